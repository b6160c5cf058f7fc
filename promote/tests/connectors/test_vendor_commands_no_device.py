"""Vendor dry-run drivers WITHOUT a device: command generation and diff parsing only.

CANNOT RUN HERE: the drivers' SSH sessions to Cisco IOS, Arista EOS and Juniper Junos need
real devices, which this environment does not have. These tests pin what decides safety
without one: every dry-run sequence ends by discarding the candidate, and each platform's
diff output is read the right way round.
"""

from __future__ import annotations

import pytest

from promote.connectors import DeviceSpec, NotSupportedHere, connector_for
from promote.connectors.base import ConnectorError
from promote.connectors.vendor import (
    eos_dry_run_steps,
    ios_archive_delta,
    ios_dry_run_steps,
    junos_dry_run_steps,
    unified_delta,
)

CANDIDATE = "! comment\nhostname leaf1\nip route 10.42.0.0/24 Null0\nend\n"


def test_eos_uses_a_session_replaces_and_aborts():
    steps = eos_dry_run_steps(CANDIDATE, "aegis-1234")
    assert [s.payload for s in steps if s.kind == "command"] == [
        "configure session aegis-1234",
        "rollback clean-config",
        "show session-config diffs",
        "abort",
    ]
    config = next(s for s in steps if s.kind == "config")
    assert config.payload == ["hostname leaf1", "ip route 10.42.0.0/24 Null0"]  # no comments, no `end`
    assert steps[-1].payload == "abort", "the candidate is always discarded"


def test_junos_loads_override_checks_and_rolls_back():
    steps = junos_dry_run_steps("system { host-name r1; }\n")
    cmds = [s.payload for s in steps if s.kind == "command"]
    assert cmds == [
        "configure private",
        "load override terminal",
        "show | compare",
        "commit check",
        "rollback 0",
        "exit configuration-mode",
    ]
    assert "commit" not in [c for c in cmds if c != "commit check"], "never commits"
    text = next(s for s in steps if s.kind == "text")
    assert text.payload.endswith("\n\x04")


def test_ios_compares_a_flash_copy_and_deletes_it():
    steps = ios_dry_run_steps("aegis-candidate-1.cfg")
    assert (
        steps[0].payload
        == "show archive config differences flash:aegis-candidate-1.cfg system:running-config"
    )
    assert steps[-1].payload == "delete /force flash:aegis-candidate-1.cfg"


def test_unified_delta_for_eos_and_junos():
    eos = (
        "--- system:/running-config\n+++ session:/aegis-1234-session-config\n@@ -1,3 +1,4 @@\n"
        " hostname leaf1\n+ip route 10.42.0.0/24 Null0\n-ip route 10.9.0.0/16 Null0\n"
    )
    assert unified_delta(eos) == (["ip route 10.9.0.0/16 Null0"], ["ip route 10.42.0.0/24 Null0"])
    junos = (
        "[edit routing-options static]\n+    route 10.42.0.0/24 discard;\n-    route 10.9.0.0/16 discard;\n"
    )
    assert unified_delta(junos) == (["    route 10.9.0.0/16 discard;"], ["    route 10.42.0.0/24 discard;"])


def test_ios_archive_delta_direction():
    # candidate is the first file: '-' lines are only in the candidate (added), '+' only running (removed)
    out = "!Contextual Config Diffs:\n-ip route 10.42.0.0 255.255.255.0 Null0\n+ip route 10.9.0.0 255.255.0.0 Null0\n"
    assert ios_archive_delta(out) == (
        ["ip route 10.9.0.0 255.255.0.0 Null0"],
        ["ip route 10.42.0.0 255.255.255.0 Null0"],
    )
    assert ios_archive_delta("!No changes were found\n") == ([], [])


@pytest.mark.parametrize("platform", ["cisco_ios", "arista_eos", "juniper_junos"])
def test_vendor_live_promotion_is_refused(platform):
    conn = connector_for(DeviceSpec(name="x", host="10.0.0.1", platform=platform))
    with pytest.raises(NotSupportedHere, match="FRR only"):
        conn.apply("hostname x\n")


def test_unknown_platform_is_a_clear_error():
    with pytest.raises(ConnectorError, match="unknown platform 'nxos'"):
        connector_for(DeviceSpec(name="x", host="10.0.0.1", platform="nxos"))


def test_device_outside_the_egress_policy_is_refused_before_connecting():
    conn = connector_for(DeviceSpec(name="edge", host="8.8.8.8", platform="arista_eos"))
    with pytest.raises(ConnectorError, match="egress refused"):
        conn.open()
