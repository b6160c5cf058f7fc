"""Device connectors for promotion: FRR over SSH (runs here), vendor gear (dry-run, needs devices)."""

from __future__ import annotations

from promote.connectors.base import Connector, ConnectorError, DeviceSpec, NotSupportedHere

PLATFORMS = ("frr", "cisco_ios", "arista_eos", "juniper_junos")


def connector_for(spec: DeviceSpec) -> Connector:
    """A connector for the device's platform (not yet connected; use it as a context manager)."""
    if spec.platform == "frr":
        from promote.connectors.frr_ssh import FrrSshConnector

        return FrrSshConnector(spec)
    if spec.platform in ("cisco_ios", "arista_eos", "juniper_junos"):
        from promote.connectors.vendor import vendor_connector

        return vendor_connector(spec)
    raise ConnectorError(
        f"{spec.name}: unknown platform {spec.platform!r}; use one of {', '.join(PLATFORMS)}"
    )


__all__ = ["Connector", "ConnectorError", "DeviceSpec", "NotSupportedHere", "PLATFORMS", "connector_for"]
