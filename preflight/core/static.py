"""Static analysis of a change before any twin runs.

1. FRR's own parser: `vtysh --dryrun -f` over each device's full candidate (the lab's
   frr.conf followed by the change lines). It needs no running daemon. Errors are mapped
   back to the change's device and line.
2. Semantic checks for mistakes FRR accepts silently and a twin would only show as
   silence: undefined route-map / prefix-list / community-list / as-path references,
   a BGP `remote-as` that does not match the peer's own AS across the link, duplicate
   addresses, interfaces that do not exist in the topology, and OSPF `network … area`
   mixed with `ip ospf area` (ospfd refuses that at runtime).

Only findings the change introduces are reported; the lab's own quirks are the lab
check's business. Each finding: device, line_no, line, severity, code, message.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from twin.base import Topology
from twin.frrconf import FrrConfig, baseline_model, config_model

VTYSH = "vtysh"
DRYRUN_TIMEOUT_S = 30.0
_DRYRUN_LINE = re.compile(r"^line (\d+):\s*%\s*([^\[:]+?)\s*(?:\[\d+\])?:\s?(.*)$")


def finding(device: str, line_no: int | None, line: str | None, severity: str, code: str,
            message: str) -> dict[str, Any]:
    return {"device": device, "line_no": line_no, "line": line, "severity": severity, "code": code,
            "message": message}


def static_check(change: dict[str, Any], topology: Topology, *, syntax_check: bool = True) -> list[dict[str, Any]]:
    """All static findings for a change, sorted by device and line."""
    findings: list[dict[str, Any]] = []
    if syntax_check:
        for device, text in change["devices"].items():
            findings += frr_dryrun(device, topology.nodes[device].frr_conf or "", text)
    findings += semantic_check(change, topology)
    findings.sort(key=lambda f: (f["device"], f["line_no"] or 0, f["code"], f["message"]))
    return findings


def frr_dryrun(device: str, baseline: str, change_text: str) -> list[dict[str, Any]]:
    """Run FRR's parser on baseline + change; return findings for the change's lines."""
    if shutil.which(VTYSH) is None:
        return [finding(device, None, None, "warning", "FRR_PARSER_UNAVAILABLE",
                        "vtysh is not installed here, so FRR's own parser did not check the syntax")]
    # vtysh stops reading a file at `end`, so the baseline's closing `end` must go.
    base_lines = [ln for ln in baseline.rstrip("\n").split("\n") if ln.strip() != "end"] if baseline.strip() else []
    # A top-level-only command between the two brings vtysh back to the configuration node,
    # as the twin's fresh `configure terminal` does; otherwise a change line could be judged
    # inside the last block of the baseline.
    sep = ["!", f"hostname {device}"]
    change_lines = change_text.rstrip("\n").split("\n")
    offset = len(base_lines) + len(sep)
    candidate = "\n".join(base_lines + sep + change_lines) + "\n"
    with tempfile.TemporaryDirectory(prefix="aegis-dryrun-") as tmp:
        path = Path(tmp) / f"{device}.conf"
        path.write_text(candidate)
        try:
            proc = subprocess.run([VTYSH, "--dryrun", "-f", str(path)], capture_output=True, text=True,
                                  timeout=DRYRUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return [finding(device, None, None, "error", "FRR_PARSER_TIMEOUT",
                            f"FRR's parser did not finish within {DRYRUN_TIMEOUT_S:.0f} s")]
    out: list[dict[str, Any]] = []
    for raw in (proc.stdout + "\n" + proc.stderr).splitlines():
        m = _DRYRUN_LINE.match(raw.strip())
        if not m:
            continue
        cand_no = int(m.group(1))
        if cand_no <= offset:
            continue  # the lab's own config; reported by the twin as load errors
        line_no = cand_no - offset
        line = change_lines[line_no - 1] if line_no - 1 < len(change_lines) else m.group(3)
        out.append(finding(device, line_no, line, "error", "FRR_SYNTAX",
                           f"FRR's parser refuses this line: {m.group(2).strip()}"))
    if proc.returncode != 0 and not out and proc.returncode not in (0, 2):
        out.append(finding(device, None, None, "error", "FRR_SYNTAX",
                           f"vtysh --dryrun failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}"))
    return out


def _topology_interfaces(topology: Topology) -> dict[str, set[str]]:
    ifaces: dict[str, set[str]] = {name: {"lo"} for name in topology.nodes}
    for link in topology.links:
        for ep in (link.a, link.b):
            ifaces.setdefault(ep.node, {"lo"}).add(ep.iface)
    return ifaces


def _line(change_text: str, line_no: int | None) -> str | None:
    if line_no is None:
        return None
    lines = change_text.split("\n")
    return lines[line_no - 1] if 0 < line_no <= len(lines) else None


def semantic_check(change: dict[str, Any], topology: Topology) -> list[dict[str, Any]]:
    """Semantic findings introduced by the change (see the module docstring)."""
    devices: dict[str, str] = change["devices"]
    models: dict[str, FrrConfig] = {}
    for name in topology.routers():
        base = topology.nodes[name].frr_conf or ""
        models[name] = config_model(base, devices[name]) if name in devices else baseline_model(base)
    out: list[dict[str, Any]] = []
    owners = _address_owners(models)
    topo_ifaces = _topology_interfaces(topology)
    for device, text in devices.items():
        cfg = models[device]
        # Undefined references.
        for ref in cfg.refs:
            key = (ref.kind, ref.name)
            if key in cfg.defined:
                continue
            if ref.origin[0] == "change":
                out.append(finding(device, ref.origin[1], ref.line, "error", "UNDEFINED_REFERENCE",
                                   f"{ref.kind} {ref.name} is used here but not defined on {device}"))
            elif key in cfg.removed and cfg.removed[key][0] == "change":
                line_no = cfg.removed[key][1]
                out.append(finding(device, line_no, _line(text, line_no), "error", "UNDEFINED_REFERENCE",
                                   f"removes {ref.kind} {ref.name}, which is still used on {device}: "
                                   f"{ref.line!r}"))
        # BGP neighbours against the peer's own AS across the link.
        for nb in cfg.neighbors.values():
            if nb.origin[0] != "change" or nb.remote_as is None:
                continue
            try:
                peer_ip = str(ipaddress.ip_address(nb.peer))
            except ValueError:
                continue  # peer group or unnumbered interface
            owner = owners.get(peer_ip)
            if owner is None:
                out.append(finding(device, nb.origin[1], nb.line, "warning", "PEER_UNKNOWN",
                                   f"no node in the lab has address {peer_ip}; this session cannot come up"))
                continue
            peer_node = owner[0]
            peer_cfg = models[peer_node]
            local_as = cfg.bgp_asn
            wanted = nb.remote_as
            actual = peer_cfg.bgp_asn
            if actual is None:
                out.append(finding(device, nb.origin[1], nb.line, "error", "REMOTE_AS_MISMATCH",
                                   f"{peer_ip} is {peer_node}, which runs no BGP"))
            elif (wanted.isdigit() and wanted != actual) or (wanted == "external" and actual == local_as) or \
                    (wanted == "internal" and actual != local_as):
                out.append(finding(device, nb.origin[1], nb.line, "error", "REMOTE_AS_MISMATCH",
                                   f"remote-as {wanted} does not match {peer_node}'s own AS {actual} "
                                   f"(peer {peer_ip}); the session will not establish"))
            elif not _peer_points_back(peer_cfg, models[device]):
                out.append(finding(device, nb.origin[1], nb.line, "warning", "PEER_NO_NEIGHBOR",
                                   f"{peer_node} has no neighbor statement for {device}; add one on "
                                   f"{peer_node} too or the session stays down"))
        # Duplicate addresses.
        for iface, addrs in cfg.addresses.items():
            for addr, origin in addrs.items():
                if origin[0] != "change":
                    continue
                ip = addr.split("/")[0]
                clashes = [o for o in _owners_of(models, ip) if o != (device, iface)]
                if clashes:
                    where = ", ".join(f"{n}:{i}" for n, i in clashes)
                    out.append(finding(device, origin[1], _line(text, origin[1]), "error", "DUPLICATE_ADDRESS",
                                       f"{ip} is already configured on {where}"))
        # Interfaces not in the topology.
        for iface, origin in cfg.interfaces.items():
            if origin[0] == "change" and iface not in topo_ifaces.get(device, set()):
                known = ", ".join(sorted(topo_ifaces.get(device, set())))
                out.append(finding(device, origin[1], _line(text, origin[1]), "error", "UNKNOWN_INTERFACE",
                                   f"interface {iface} does not exist on {device} in this lab "
                                   f"(interfaces: {known})"))
        # OSPF: `network … area` and `ip ospf area` cannot be mixed (ospfd refuses at runtime).
        if cfg.ospf_networks and cfg.iface_ospf_area:
            origins = [o for _, o in cfg.ospf_networks.values()] + [o for _, o in cfg.iface_ospf_area.values()]
            from_change = sorted((o for o in origins if o[0] == "change"), key=lambda o: o[1] or 0)
            if from_change:
                line_no = from_change[0][1]
                out.append(finding(device, line_no, _line(text, line_no), "error", "OSPF_AREA_MIXED",
                                   "`network … area` under router ospf and `ip ospf area` on interfaces "
                                   "cannot be mixed; ospfd refuses one of them at runtime"))
    return out


def _address_owners(models: dict[str, FrrConfig]) -> dict[str, tuple[str, str]]:
    owners: dict[str, tuple[str, str]] = {}
    for node in sorted(models):
        for iface, addrs in sorted(models[node].addresses.items()):
            for addr in addrs:
                owners.setdefault(addr.split("/")[0], (node, iface))
    return owners


def _owners_of(models: dict[str, FrrConfig], ip: str) -> list[tuple[str, str]]:
    return [(node, iface) for node in sorted(models) for iface, addrs in sorted(models[node].addresses.items())
            if any(a.split("/")[0] == ip for a in addrs)]


def _peer_points_back(peer_cfg: FrrConfig, local_cfg: FrrConfig) -> bool:
    local_ips = {a.split("/")[0] for addrs in local_cfg.addresses.values() for a in addrs}
    return any(nb in local_ips for nb in peer_cfg.neighbors)
