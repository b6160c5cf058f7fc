"""The `netns` backend: real FRR daemons, one Linux network namespace per node.

Each router is "a container without Docker" (../shared/notes/TWIN.md §3.5): a network namespace
`aegis-<id>-<node>` plus a private mount and UTS namespace held open by a holder process
(`unshare --mount --uts ... sleep infinity`). Inside it the node's own folder is bind-mounted on
`/etc/frr` (frr.conf, daemons, vtysh.conf with the integrated config), `/var/run/frr` and
`/var/log/frr`, and the hostname is the node name, so FRR runs exactly as on a production box:
daemons from the daemons file, then `vtysh -b` loads the integrated config, and `frr-reload.py`
works unchanged. LAN segments (`kind: bridge`) are Linux bridges in the run's own switch
namespace `aegis-<id>--sw`; nothing is ever connected to the host's network.

All state lives in `runstate` (one directory per run); teardown works from it alone.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import icmp, runstate
from .base import (
    NAMESPACE_PREFIX,
    ApplyResult,
    ConvergeResult,
    Node,
    Progress,
    RejectedLine,
    ReloadResult,
    Topology,
    Tunnel,
    TwinError,
    no_progress,
)
from .fib import fib_links, fib_normalize
from .loadlog import classify_vtysh_output
from .netwatch import RouteWatch
from .reap import twin_reap_orphans

FRR_DIR = Path("/usr/lib/frr")
# Start order inside a node: zebra first (everyone talks to it), then the helpers the routing
# daemons register with, then the routing daemons.
DAEMON_ORDER = ("zebra", "staticd", "bfdd", "mgmtd")
ROUTER_SYSCTLS = (
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv6.conf.default.forwarding=1",
    # No duplicate address detection: a new link-local would sit "tentative" for a second
    # or more, which delays OSPFv3 and BGP over link-local (unnumbered) sessions.
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    "net.ipv4.fib_multipath_hash_policy=1",
    # Keep addresses on an interface that goes down (as FRR on a production box expects).
    "net.ipv6.conf.all.keep_addr_on_down=1",
)
RMAP_DELAY_DEFAULT_S = 5.0  # bgpd's `bgp route-map delay-timer` default (FRR 8.4)
RMAP_DELAY_MARGIN_S = 1.0
_POLICY_LINE = re.compile(r"^\s*(no\s+)?(route-map|ip prefix-list|ipv6 prefix-list|bgp (large-|ext)?community-list|"
                          r"bgp as-path access-list|access-list|ipv6 access-list|match |set |bgp route-map delay-timer)",
                          re.M)
_RMAP_DELAY = re.compile(r"^\s*bgp route-map delay-timer (\d+)", re.M)
OSPF_MIN_STABLE_S = 6.5  # see _min_stable_for(): ospfd's 5 s ABR task delay plus a margin
OSPF_NSSA_MIN_STABLE_S = 12.0  # NSSA translation takes a second ABR task pass
_NSSA_RE = re.compile(r"^\s*area \S+ nssa\b", re.M)
SMALL_LAB_ROUTERS = 12  # all loopback pairs are pinged up to this many routers; a sample above
SAMPLE_PAIRS = 120
FRR_START_WORKERS = 64
WORKERS = 12  # concurrent helper processes; the machine has 2 cores, most time is waiting
DIFFERENCES_FROM_PRODUCTION = [
    "no forwarding hardware: the data plane is the Linux kernel of the twin host",
    "links are veth pairs with no delay, loss or bandwidth limit",
    "every node runs the twin host's FRR version, whatever image the lab names",
    "no management network; nothing outside the twin is reachable",
]


def frr_version() -> str:
    try:
        out = subprocess.run([str(FRR_DIR / "zebra"), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(r"version\s+(\S+)", out.stdout)
    return m.group(1) if m else "unknown"


def preflight_environment() -> None:
    """Raise TwinError saying what to fix when this host cannot run a netns twin."""
    if os.geteuid() != 0:
        raise TwinError("the netns twin needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN): run the twin "
                        "worker as root, or use the 'simulator' backend")
    missing = [str(FRR_DIR / d) for d in ("zebra", "staticd", "bgpd") if not (FRR_DIR / d).exists()]
    if missing:
        raise TwinError(f"FRR is not installed ({', '.join(missing)} missing): apt-get install frr")
    for tool in ("ip", "nsenter", "unshare", "vtysh"):
        if shutil.which(tool) is None:
            raise TwinError(f"`{tool}` not found on PATH: apt-get install iproute2 util-linux frr")


def mac_for(lab: str, node: str, iface: str) -> str:
    """A stable, locally administered unicast MAC, so IPv6 link-locals repeat across runs."""
    h = hashlib.sha256(f"{lab}/{node}/{iface}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (bytes([(h[0] & 0xFC) | 0x02]) + h[1:6]))


def _run(argv: list[str], *, input: str | None = None, timeout: float = 60.0, check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise TwinError(f"timed out after {timeout:.0f} s: {' '.join(argv)[:200]}") from None
    if check and proc.returncode != 0:
        raise TwinError(f"{' '.join(argv)[:200]} failed: {(proc.stderr or proc.stdout).strip()[:500]}")
    return proc


def _parallel(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = WORKERS) -> list[Any]:
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


class _Alongside:
    """Reads run inside a settle window (`converge(alongside=fn)`), and the rule for believing them.

    One run at a time, in a thread of its own. A run is held when it started after the last
    change the window saw (routes, addresses, links from the kernel's notifications; protocol
    state from the sweeps) and ended before the sweep that decides began: the network stood still
    for the whole time the reads looked at it, and a sweep after them saw the same state."""

    def __init__(self, fn: Callable[[], Any] | None) -> None:
        self.fn = fn
        self.future: Future[Any] | None = None
        self.started = 0.0
        self.ended: float | None = None
        self.runs = 0
        self._pool: ThreadPoolExecutor | None = None

    def _run(self) -> Any:
        try:
            return self.fn()  # type: ignore[misc]
        finally:
            self.ended = time.monotonic()

    def running(self) -> bool:
        return self.future is not None and not self.future.done()

    def ended_after(self, moment: float) -> bool:
        """Finished since `moment` (a sweep's start): the next sweep can decide."""
        return self.fn is not None and not self.running() and self.ended is not None and self.ended > moment

    def launch_unless_valid(self, settled_at: float) -> None:
        if self.fn is None or self.running() or (self.future is not None and self.started > settled_at):
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-alongside")
        self.runs += 1
        self.ended = None
        self.started = time.monotonic()
        self.future = self._pool.submit(self._run)

    def done_since(self, settled_at: float) -> bool:
        """Finished, having started after the last change: the next sweep may be the one that decides."""
        return (self.fn is not None and self.future is not None and self.future.done()
                and self.started > settled_at)

    def held(self, settled_at: float, sweep_began: float) -> bool:
        """True without reads; with reads, only when they saw the settled state throughout."""
        if self.fn is None:
            return True
        return (self.future is not None and self.future.done() and self.started > settled_at
                and self.ended is not None and self.ended <= sweep_began)

    def __enter__(self) -> _Alongside:
        return self

    def __exit__(self, *exc: object) -> None:
        # Never leave a thread reading a twin that the caller may tear down next.
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def parse_json_stream(text: str) -> list[Any]:
    """The JSON values vtysh printed for several `-c` commands, in order."""
    dec = json.JSONDecoder()
    out: list[Any] = []
    i = 0
    while True:
        starts = [p for p in (text.find("{", i), text.find("[", i)) if p >= 0]
        if not starts:
            return out
        try:
            value, end = dec.raw_decode(text, min(starts))
        except ValueError:
            i = min(starts) + 1
            continue
        out.append(value)
        i = end


class NetnsBackend:
    name = "netns"
    tier = "real"

    def __init__(self) -> None:
        preflight_environment()

    def spawn(self, topology: Topology, run_id: str | None = None, progress: Progress = no_progress,
              tunnels: list[Tunnel] | None = None) -> NetnsTwin:
        # Before adding a twin, remove those a dead process left; and adopt our daemons so that
        # teardown can wait for each one to be gone (runstate.become_subreaper says why).
        twin_reap_orphans()
        runstate.become_subreaper()
        twin = NetnsTwin(topology, run_id, tunnels)
        try:
            twin._spawn(progress)
        except BaseException as exc:
            leftovers = twin._destroy()
            progress("spawn", "failed", str(exc), {"leftovers": leftovers})
            if isinstance(exc, TwinError):
                raise
            if isinstance(exc, Exception):
                raise TwinError(f"spawn failed: {exc}") from exc
            raise
        return twin


class NetnsTwin:
    """A running lab in namespaces. Call `teardown()` in `finally`."""

    # converge() takes `not_before` (a monotonic deadline; docs/dev/CONTRACTS.md, settle window).
    converge_not_before = True

    def __init__(self, topology: Topology, run_id: str | None = None, tunnels: list[Tunnel] | None = None) -> None:
        self.topology = topology
        # Links whose far end is on another twin host (twin/split.py): VXLAN devices.
        self.tunnels = list(tunnels or [])
        self.label = run_id or ""
        # Short ids keep namespace names readable; the caller's run id is recorded beside it.
        self.run_id = run_id if run_id and runstate.RUN_ID_RE.match(run_id) and not runstate.run_dir(
            run_id).exists() else runstate.new_run_id()
        self.prefix = f"{NAMESPACE_PREFIX}{self.run_id}-"
        self.dir = runstate.run_dir(self.run_id)
        self.load_errors: list[RejectedLine] = []
        self.load_warnings: list[str] = []
        self.facts: dict[str, Any] = {}
        self.routers = topology.routers()
        self.hosts = sorted(n for n, node in topology.nodes.items() if node.role == "host")
        self.bridges = sorted(n for n, node in topology.nodes.items() if node.role == "bridge")
        self.switch_ns = f"{self.prefix}-sw" if self.bridges else None
        self.holders: dict[str, int] = {}
        self._holder_procs: list[subprocess.Popen[bytes]] = []
        self._torn_down = False
        self._apply_seq = 0
        # Monotonic moment before which the network is not believed settled (see _policy_touched).
        self._policy_not_before = 0.0
        self._reach_seed: int | None = None
        self.state: dict[str, Any] = {}
        self.host_tuning: list[str] = []

    # ------------------------------------------------------------------ names

    def ns(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node

    def _save(self) -> None:
        runstate.state_write(self.dir, self.state)

    # ------------------------------------------------------------------ spawn

    def _spawn(self, progress: Progress) -> None:
        t0 = time.monotonic()
        topo = self.topology
        progress("spawn", "started", f"{len(topo.nodes)} nodes, {len(topo.links)} links",
                 {"twin_id": self.run_id})
        for name in self.routers:
            for daemon in topo.nodes[name].daemons:
                if not (FRR_DIR / daemon).exists():
                    raise TwinError(f"node {name}: daemon {daemon} is not installed in {FRR_DIR}")
        namespaces = [self.ns(n) for n in self.routers + self.hosts]
        if self.switch_ns:
            namespaces.append(self.switch_ns)
        for ns in namespaces:
            if (runstate.NETNS_DIR / ns).exists():
                raise TwinError(f"namespace {ns} already exists; run `manage.py twin_reap`")
        # Mount points for the node's own folders. FRR's package creates them, but /run/frr
        # only appears once the host service has started (not in a fresh container).
        for mountpoint in ("/etc/frr", "/var/run/frr"):
            if not os.path.isdir(mountpoint):
                os.makedirs(mountpoint, mode=0o755, exist_ok=True)
                shutil.chown(mountpoint, "frr", "frr")
        self.host_tuning = _raise_neighbour_limits(len(topo.links))
        self.dir.mkdir(parents=True, exist_ok=False, mode=0o755)
        self.state = {
            "run_id": self.run_id, "label": self.label, "lab": topo.name, "source": topo.source,
            "owner_pid": os.getpid(), "owner_start": runstate.proc_start_time(os.getpid()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "namespaces": namespaces, "holders": {}, "daemons": {},
            # VXLAN devices exist in this process's namespace between creation and the move into
            # their node; recorded first so a crash in between leaves nothing for good.
            "host_links": [self._tunnel_dev(k) for k in range(len(self.tunnels))],
        }
        self._save()  # recorded before anything exists, so a crash from here on is reapable

        # 1. namespaces, sysctls, loopbacks up
        _run(["ip", "-batch", "-"], input="".join(f"netns add {ns}\n" for ns in namespaces))
        sysctl_jobs = [(self.ns(n), ROUTER_SYSCTLS) for n in self.routers + self.hosts]
        if self.switch_ns:
            # The switch namespace only bridges frames; no addresses of its own.
            sysctl_jobs.append((self.switch_ns, ("net.ipv6.conf.all.disable_ipv6=1",
                                                 "net.ipv6.conf.default.disable_ipv6=1")))
        _parallel(lambda job: _run(["ip", "netns", "exec", job[0], "sh", "-c",
                                    f"sysctl -q -w {' '.join(job[1])} && ip link set lo up"]), sysctl_jobs)
        # 2. bridges, then veths created directly in their namespaces with their final names
        port_of_bridge: dict[str, list[str]] = {b: [] for b in self.bridges}
        veth_lines: list[str] = []
        up: dict[str, list[str]] = {}
        addrs: dict[str, list[str]] = {}
        for k, link in enumerate(topo.links):
            ends = []
            for ep in (link.a, link.b):
                if topo.nodes[ep.node].role == "bridge":
                    port = f"p{k}{'a' if ep is link.a else 'b'}"
                    port_of_bridge[ep.node].append(port)
                    ends.append((self.switch_ns, port, ep.mac or mac_for(topo.name, ep.node, port)))
                else:
                    ends.append((self.ns(ep.node), ep.iface, ep.mac or mac_for(topo.name, ep.node, ep.iface)))
                    up.setdefault(self.ns(ep.node), []).append(ep.iface)
                    for addr in (ep.ipv4, ep.ipv6):
                        if addr:
                            addrs.setdefault(self.ns(ep.node), []).append(f"address add {addr} dev {ep.iface}")
            mtu = f" mtu {link.mtu}" if link.mtu else ""
            (ns_a, if_a, mac_a), (ns_b, if_b, mac_b) = ends
            veth_lines.append(f"link add name {if_a} address {mac_a}{mtu} netns {ns_a} type veth "
                              f"peer name {if_b} address {mac_b}{mtu} netns {ns_b}\n")
        if self.switch_ns:
            _run(["ip", "-n", self.switch_ns, "-batch", "-"], input="".join(
                f"link add {b} type bridge stp_state 0 forward_delay 0 mcast_snooping 0\nlink set {b} up\n"
                for b in self.bridges))
        if veth_lines:
            _run(["ip", "-batch", "-"], input="".join(veth_lines))
        batches: dict[str, str] = {}
        for ns, ifaces in up.items():
            batches[ns] = "".join(f"link set {i} up\n" for i in ifaces) + "".join(f"{a}\n" for a in addrs.get(ns, []))
        if self.switch_ns:
            batches[self.switch_ns] = "".join(f"link set {p} master {b}\nlink set {p} up\n"
                                              for b, ports in port_of_bridge.items() for p in ports)
        _parallel(lambda item: _run(["ip", "-n", item[0], "-batch", "-"], input=item[1]), batches.items())
        self._make_tunnels()
        t_net = time.monotonic() - t0
        progress("spawn", "info", f"namespaces and links ready in {t_net:.2f} s", {"seconds": t_net})

        # 3. exec lines (before FRR reads its config, as containerlab/topotests do)
        for msg in _parallel(self._run_exec, self.routers + self.hosts):
            self.load_warnings.extend(msg)
        # 4. per-router folders and holders
        for name in self.routers:
            self._write_node_dir(topo.nodes[name])
        for name in self.routers:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(name), "unshare", "--mount", "--uts", "--propagation",
                 "private", "sleep", "infinity"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, env=runstate.mark_env(self.dir))
            self._holder_procs.append(proc)
            self.holders[name] = proc.pid
            self.state["holders"][name] = [proc.pid, runstate.proc_start_time(proc.pid)]
        self._save()
        self._wait_holders()
        # 5. FRR: mounts, hostname, daemons in order, then `vtysh -b`, one script per node, nodes in parallel
        t1 = time.monotonic()
        # Wide on purpose: a node's start is mostly waiting (each `-d` daemon signals when it is
        # ready), so many nodes in flight hide that latency even on 2 cores.
        outputs = _parallel(self._start_frr, self.routers, workers=FRR_START_WORKERS)
        for name, (_rc, out) in zip(self.routers, outputs, strict=True):
            pids = self._read_pids(name)
            self.state["daemons"][name] = pids
            missing = [d for d in self.topology.nodes[name].daemons if d not in pids]
            if missing:
                self._save()
                raise TwinError(f"node {name}: {', '.join(missing)} did not start: {out.strip()[-800:]}")
        self._save()
        t_frr = time.monotonic() - t1
        for name in self.routers:
            text = (self.node_dir(name) / "log" / "vtysh-b.out").read_text(errors="replace")
            errors, warns = classify_vtysh_output(name, text, self.topology.nodes[name].frr_conf or "")
            self.load_errors.extend(errors)
            self.load_warnings.extend(warns)
        spawn_s = time.monotonic() - t0
        self.facts = {
            "backend": "netns", "tier": "real", "frr_version": frr_version(),
            "nodes": len(self.routers), "hosts": len(self.hosts), "bridges": len(self.bridges),
            "links": len(topo.links), "twin_id": self.run_id, "namespace_prefix": self.prefix,
            "spawn_s": round(spawn_s, 3), "network_s": round(t_net, 3), "frr_start_s": round(t_frr, 3),
            "warnings": list(topo.warnings) + self.load_warnings,
            "host_tuning": self.host_tuning,
            "differences_from_production": list(DIFFERENCES_FROM_PRODUCTION),
        }
        progress("spawn", "ok", f"{len(self.routers)} routers up in {spawn_s:.2f} s; "
                 f"{len(self.load_errors)} config lines refused",
                 {"seconds": spawn_s, "rejected": len(self.load_errors)})

    def _tunnel_dev(self, k: int) -> str:
        return f"vx{self.run_id}{k}"  # unique on the host, <= 15 characters up to 99999 tunnels

    def _make_tunnels(self) -> None:
        """One VXLAN device per cross-host link, created here and moved into its node.

        As containerlab's and netlab's multi-host links: the VXLAN socket stays in the namespace
        the device was created in (this agent's, which holds the underlay), while the device
        itself becomes the node's interface, under the lab's name and MAC. Deleting the node's
        namespace deletes it.
        """
        if not self.tunnels:
            return
        lines = []
        for k, t in enumerate(self.tunnels):
            if t.node not in self.routers + self.hosts:
                raise TwinError(f"tunnel {k}: node {t.node!r} is not a router or host of this twin")
            dev = self._tunnel_dev(k)
            local = f" local {t.local}" if t.local else ""
            lines.append(f"link add {dev} type vxlan id {int(t.vni)} remote {t.remote}{local} "
                         f"dstport {int(t.dstport)} nolearning\n")
            lines.append(f"link set {dev} netns {self.ns(t.node)}\n")
        _run(["ip", "-batch", "-"], input="".join(lines))
        per_ns: dict[str, list[str]] = {}
        for k, t in enumerate(self.tunnels):
            mac = t.mac or mac_for(self.topology.name, t.node, t.iface)
            per_ns.setdefault(self.ns(t.node), []).append(
                f"link set {self._tunnel_dev(k)} name {t.iface} address {mac} mtu {int(t.mtu)}\nlink set {t.iface} up\n")
        _parallel(lambda item: _run(["ip", "-n", item[0], "-batch", "-"], input="".join(item[1])), per_ns.items())

    def _run_exec(self, name: str) -> list[str]:
        warnings = []
        for command in self.topology.nodes[name].exec:
            argv = command.split()
            proc = _run(["ip", "netns", "exec", self.ns(name), *argv], check=False, timeout=20,
                        env=runstate.mark_env(self.dir))
            if proc.returncode != 0:
                warnings.append(f"node {name}: exec {command!r} failed: {(proc.stderr or proc.stdout).strip()[:200]}")
        return warnings

    def _write_node_dir(self, node: Node) -> None:
        base = self.node_dir(node.name)
        for sub in ("etc", "run", "log", "tmp", "frrtmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "etc" / "frr.conf").write_text(node.frr_conf or "")
        (base / "etc" / "daemons").write_text(
            "# written by AEGIS from the lab's daemons file\n"
            + "".join(f"{d}=yes\n" for d in node.daemons if d != "zebra") + "vtysh_enable=yes\n")
        (base / "etc" / "vtysh.conf").write_text("service integrated-vtysh-config\n")
        # The daemons drop to user frr: they must be able to write their run and log folders.
        for sub in ("etc", "run", "log", "frrtmp"):
            shutil.chown(base / sub, "frr", "frr")
            for f in (base / sub).iterdir():
                shutil.chown(f, "frr", "frr")
        os.chmod(base / "etc" / "frr.conf", 0o640)

    def _wait_holders(self, timeout: float = 10.0) -> None:
        """Wait until every holder has its own mount namespace (never mount into the host's)."""
        host_mnt = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + timeout
        pending = dict(self.holders)
        while pending:
            for name, pid in list(pending.items()):
                argv = runstate.proc_cmdline(pid)
                try:
                    mnt = os.readlink(f"/proc/{pid}/ns/mnt")
                except OSError:
                    raise TwinError(f"node {name}: the namespace holder exited at once") from None
                if argv[:1] == ["sleep"] and mnt != host_mnt:
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise TwinError(f"namespace holders did not start: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.01)

    def _nsenter(self, node: str) -> list[str]:
        if node not in self.holders:
            raise TwinError(f"unknown router {node!r} (routers: {', '.join(self.routers)})")
        return ["nsenter", "-t", str(self.holders[node]), "-m", "-u", "-n"]

    def _start_frr(self, name: str) -> tuple[int, str]:
        node = self.topology.nodes[name]
        base = self.node_dir(name)
        order = [d for d in DAEMON_ORDER if d in node.daemons] + [d for d in node.daemons if d not in DAEMON_ORDER]
        lines = [
            "set -e",
            f"mount --bind {base}/etc /etc/frr",
            f"mount --bind {base}/run /var/run/frr",
            f"[ -d /var/log/frr ] && mount --bind {base}/log /var/log/frr || true",
            # FRR keeps a crash-log folder per daemon start (/var/tmp/frr/<daemon>.<pid>) and never
            # removes it: in the run folder, it goes with the twin instead of piling up on the host.
            f"[ -d /var/tmp/frr ] && mount --bind {base}/frrtmp /var/tmp/frr || true",
            f"hostname {name}",
            "set +e",
            "cd /var/run/frr",
        ]
        for d in order:
            # -P 0: no TCP vty; vtysh talks over the unix sockets in /var/run/frr.
            extra = " -s 90000000" if d == "zebra" else ""
            lines.append(f"{FRR_DIR}/{d} -d -P 0 -f /dev/null -i /var/run/frr/{d}.pid"
                         f" --log file:/var/log/frr/{d}.log{extra} >>/var/log/frr/start.out 2>&1")
        # Start-up only: bgpd holds every peer whose policy references a route-map ("No AFI/SAFI
        # activated for peer") until its route-map delay timer fires, 5 s after the config's
        # route-maps were entered (measured on the triangle: r1's sessions 4.3 s after spawn, 1.8 s
        # with the timer at 0). That wait is the boot of a router, not the network a change is
        # verified on: the timer is 0 while the config loads, then set back to the default unless
        # the config sets it (its own line, loaded by vtysh -b, then stands). The running config and
        # the settled state are the same; after spawn the timer works as configured (apply and
        # reload still wait for it, see `_policy_touched`).
        rmap_fast = "bgpd" in node.daemons and not _RMAP_DELAY.search(node.frr_conf or "")
        if rmap_fast:
            lines.append("vtysh -c 'configure terminal' -c 'bgp route-map delay-timer 0' >/dev/null 2>&1")
        # vtysh -b loads /etc/frr/frr.conf exactly as FRR's init script does on a real box, and
        # prints every line a daemon refused (a daemon started with -f would lose them).
        lines.append("vtysh -b >/var/log/frr/vtysh-b.out 2>&1")
        if rmap_fast:
            lines.append("vtysh -c 'configure terminal' -c 'no bgp route-map delay-timer' >/dev/null 2>&1")
        lines.append("exit 0")
        # Every daemon inherits the run's mark from this script: one that forks into the background
        # after its PID was read is still found by teardown and the reaper (runstate.destroy).
        proc = _run([*self._nsenter(name), "sh", "-c", "\n".join(lines)], check=False, timeout=120,
                    env=runstate.mark_env(self.dir))
        out = proc.stdout + proc.stderr
        start_out = base / "log" / "start.out"
        if start_out.exists():
            out += start_out.read_text(errors="replace")
        return proc.returncode, out

    def _read_pids(self, name: str) -> dict[str, list[int | None]]:
        pids: dict[str, list[int | None]] = {}
        for daemon in self.topology.nodes[name].daemons:
            try:
                pid = int((self.node_dir(name) / "run" / f"{daemon}.pid").read_text().strip())
            except (OSError, ValueError):
                continue
            if runstate.proc_start_time(pid) is not None:
                pids[daemon] = [pid, runstate.proc_start_time(pid)]
        return pids

    # ------------------------------------------------------------------ vtysh

    def vtysh(self, node: str, *commands: str, timeout: float = 30.0) -> str:
        argv = [*self._nsenter(node), "vtysh"]
        for c in commands:
            argv += ["-c", c]
        return _run(argv, timeout=timeout, check=False).stdout

    def vtysh_json(self, node: str, *commands: str) -> list[Any]:
        """One vtysh process for several `show ... json` commands; one value per command."""
        values = parse_json_stream(self.vtysh(node, *commands))
        if len(values) == len(commands):
            return values
        # A command printed no JSON (or extra text): ask one at a time so values stay aligned.
        out = []
        for c in commands:
            v = parse_json_stream(self.vtysh(node, c))
            out.append(v[0] if v else {})
        return out

    # ------------------------------------------------------------------ converge

    def _fib(self, node: str) -> str:
        pid = self.holders[node]
        parts = []
        for f in ("route", "ipv6_route"):
            try:
                with open(f"/proc/{pid}/net/{f}") as fh:  # the kernel FIB of the node's netns, no process spawned
                    parts.append(fh.read())
            except OSError:
                parts.append("")
        return "".join(parts)

    def _protocol_state(self, node: str, tables: bool = False
                        ) -> tuple[list[str], list[str], list[str], dict[str, Any] | None]:
        """(signature items, not-yet-up items that may be stuck for good, transient items, the
        router's tables as `snapshot` reads them when `tables`, else None). With `tables`, the
        snapshot's commands ride in the same vtysh process as the protocol state's."""
        daemons = self.topology.nodes[node].daemons
        cmds: list[str] = []
        if "bgpd" in daemons:
            cmds += ["show bgp vrf all summary json", "show bgp vrf all neighbors json"]
        if "ospfd" in daemons:
            cmds += ["show ip ospf interface json", "show ip ospf neighbor json"]
        if "ospf6d" in daemons:
            cmds += ["show ipv6 ospf6 interface json", "show ipv6 ospf6 neighbor json"]
        if "bfdd" in daemons:
            cmds.append("show bfd peers json")
        if tables:
            cmds += [c for c in self._snapshot_cmds(node) if c not in cmds]
        if not cmds:
            return [], [], [], None
        values = dict(zip(cmds, self.vtysh_json(node, *cmds), strict=True))
        sig: list[str] = []
        down: list[str] = []
        moving: list[str] = []
        for peer, info in _bgp_peers(values.get("show bgp vrf all summary json")).items():
            state = info["state"]
            if state == "Established" or _bgp_admin_down(info):
                sig.append(f"bgp {peer} {state}")
            elif state in ("Active", "Idle", "Connect"):
                # Active/Connect alternate while a peer is unreachable: one "down" signature.
                sig.append(f"bgp {peer} down")
                down.append(f"{node}: bgp {peer} {state}")
            else:
                sig.append(f"bgp {peer} {state}")
                moving.append(f"{node}: bgp {peer} {state}")
        # A session that has just come up sends its table after the update-group coalesce time
        # (about 1 s in FRR 8.4), ending it with End-of-RIB: until then its routes are still to
        # come, whatever the FIB shows. Only asked of peers that negotiated graceful restart
        # (FRR's default: helper), the ones that send End-of-RIB.
        moving += [f"{node}: {what}" for what in _bgp_pending(values.get("show bgp vrf all neighbors json"))]
        for ifname, ifstate in _ospf_interfaces(values.get("show ip ospf interface json")).items():
            sig.append(f"ospf if {ifname} {ifstate}")
            if ifstate == "Waiting":
                moving.append(f"{node}: ospf interface {ifname} Waiting")
        for key, state in _ospf_neighbors(values.get("show ip ospf neighbor json")).items():
            sig.append(f"ospf {key} {state}")
            if state not in ("Full", "2-Way"):
                moving.append(f"{node}: ospf neighbor {key} {state}")
        for ifname, ifstate in _ospf6_interfaces(values.get("show ipv6 ospf6 interface json")).items():
            sig.append(f"ospf6 if {ifname} {ifstate}")
            if ifstate == "Waiting":
                moving.append(f"{node}: ospf6 interface {ifname} Waiting")
        for key, state in _ospf6_neighbors(values.get("show ipv6 ospf6 neighbor json")).items():
            sig.append(f"ospf6 {key} {state}")
            if state not in ("Full", "Twoway", "2-Way"):
                moving.append(f"{node}: ospf6 neighbor {key} {state}")
        for key, info in _bfd_peers(values.get("show bfd peers json")).items():
            status = info["status"]
            sig.append(f"bfd {key} {status}")
            if status not in ("up", "shutdown"):
                (down if status == "down" else moving).append(f"{node}: bfd {key} {status}")
        return sorted(sig), down, moving, (_node_tables(values) if tables else None)

    def _min_stable_for(self) -> float:
        """The shortest stability window that cannot miss a protocol's own delayed work."""
        confs = [self.topology.nodes[n] for n in self.routers]
        if not any(d in node.daemons for node in confs for d in ("ospfd", "ospf6d")):
            return 0.0
        # ospfd runs its ABR task (summaries into other areas, external defaults) 5 s after a
        # topology change, with nothing visible before it: with 3 s, labs/campus was declared
        # settled before area 1 had its summaries. An NSSA ABR translates Type-7 LSAs only in
        # a later pass of that task: in corpus ospf_suppress_fa the FIB stood still from 3 s
        # to 12.4 s before the translated routes arrived.
        if any(_NSSA_RE.search(node.frr_conf or "") for node in confs):
            return OSPF_NSSA_MIN_STABLE_S
        return OSPF_MIN_STABLE_S

    def converge(self, timeout: float, stable_for: float = 3.0, quiet_for: float | None = None,
                 not_before: float | None = None, expect_down: Collection[str] = (),
                 alongside: Callable[[], Any] | None = None) -> ConvergeResult:
        """Wait until the network has settled; a predicate, never a fixed sleep.

        Settled = every BGP session Established, no OSPF interface Waiting, OSPF neighbours
        Full (2-Way between DROthers), BFD up, and the kernel FIB of every router unchanged
        for `stable_for` seconds (at least 6.5 s when OSPF runs, 12 s with an NSSA: see
        `_min_stable_for`). A session that stays down for good (a peer that does not exist,
        an admin shutdown, a VRF the kernel lacks) must not stall the run: when everything,
        down sessions included, has been unchanged for `quiet_for` seconds (default
        max(3 x stable_for, 15 s)) the network counts as settled and the down sessions are
        listed in `down`. `not_before` (a `time.monotonic()` value) is a moment before which
        the network is not believed settled, whatever it shows: a protocol timer that must run
        out (docs/dev/CONTRACTS.md, settle window). `seconds` runs from this call to the moment
        the final state was first seen.

        Event-driven: the kernel tells us when a router's routes change (rtnetlink, `netwatch`),
        so nothing is polled while the network moves; vtysh is asked once the FIB has been
        still for a moment (to date protocol changes) and again when the window is about to
        close (the sweep that decides), plus every `check_every` while something is in a
        transient state.

        `expect_down`: sessions the caller has taken down on purpose (a failure scenario's link),
        as "NODE: bgp PEER" (or "NODE: bfd KEY"): they cannot come back while the link is down, so
        when they are the only ones down the network is settled after `stable_for`, not after the
        quiet window that exists for sessions that might still come up.

        `alongside`: reads of the settled network (snapshot, pings, FIB) to run *inside* the
        window instead of after it. They start at a sweep that finds nothing in a transient
        state and are believed only if no route, address, link or protocol state changed from
        their start until a sweep begun after they ended, which is then the sweep that decides
        (so settling waits for them). Otherwise they are run again. The held result is
        `ConvergeResult.alongside` (a done Future); None when the network did not settle. The
        sweep that decided also read every router's tables as `snapshot(reachability=False)`
        would (`ConvergeResult.tables`), for the caller to compare with what the reads saw.
        """
        stable_for = max(stable_for, self._min_stable_for())
        # Longer than BGP's 10 s connect-retry (datacenter profile): a first connect that failed
        # under load is retried once before a down session counts as down for good.
        quiet = quiet_for if quiet_for is not None else max(3 * stable_for, 15.0)
        t0 = time.monotonic()
        not_before = max(not_before or t0, self._policy_not_before)
        try:
            watch: RouteWatch | None = RouteWatch({n: self.ns(n) for n in self.routers})
        except OSError:
            watch = None  # no rtnetlink here (should not happen as root): fall back to polling /proc
        try:
            with _Alongside(alongside) as reads:
                return self._converge(watch, t0, timeout, stable_for, quiet, not_before, tuple(expect_down), reads)
        finally:
            if watch is not None:
                watch.close()

    @staticmethod
    def _sweep_due(now: float, fib_last_change: float, settled_at: float, proto_checked: float,
                   moving: list[str], down: list[str], stable_for: float, quiet: float, not_before: float,
                   check_every: float) -> bool:
        """Whether to ask every router's daemons now (the FIB has been still for a moment)."""
        if proto_checked <= fib_last_change:
            return True  # routes moved since the last look: learn (and date) the protocol state
        if moving:
            return now - proto_checked >= check_every  # a transient state: watch it progress
        # The look that decides, once the window (or, with sessions down, the quiet time) has run.
        target = max(settled_at + (quiet if down else stable_for), not_before) - 0.05
        if now >= target > proto_checked:
            return True
        # A down session may still come up (connect-retry): look now and then, to date it.
        return bool(down) and now - proto_checked >= max(check_every, stable_for)

    def _converge(self, watch: RouteWatch | None, t0: float, timeout: float, stable_for: float, quiet: float,
                  not_before: float, expect_down: tuple[str, ...] = (), reads: _Alongside | None = None
                  ) -> ConvergeResult:
        reads = reads or _Alongside(None)
        last_fib = {n: self._fib(n) for n in self.routers}
        fib_changed = {n: t0 for n in self.routers}
        proto_sig: tuple[Any, ...] | None = None
        proto_changed = t0
        proto_checked = 0.0
        down: list[str] = []
        unexpected: list[str] = []  # down and not in expect_down: these get the quiet window
        moving: list[str] = ["protocols not checked yet"]
        check_every = max(0.5, 0.02 * len(self.routers))
        # FIB still this long before vtysh is asked at all (a sweep costs one process per router).
        first_look = min(0.5, stable_for / 2)
        # With reads to run inside the window, the first look comes sooner: they can start only
        # after a sweep found nothing transient, and every tenth of a second they wait is a
        # tenth the window cannot hide (a witness ping waits out a 1 s timeout). One sweep, moved
        # earlier: no more vtysh than without.
        early_look = min(0.1, first_look) if reads.fn is not None else first_look
        sweep_began = 0.0
        while True:
            now = time.monotonic()
            fib_last_change = max(fib_changed.values(), default=t0)
            settled_at = max(fib_last_change, proto_changed)
            decides_at = max(settled_at + (quiet if unexpected else stable_for), not_before) - 0.05
            look = early_look if proto_sig is None else first_look
            if now - fib_last_change >= look and (self._sweep_due(
                    now, fib_last_change, settled_at, proto_checked, moving, unexpected, stable_for, quiet,
                    not_before, check_every) or (not moving and now >= decides_at and reads.ended_after(sweep_began))):
                # A sweep that may decide, with the reads inside the window done, also reads every
                # router's tables (the snapshot's commands, in the same vtysh process): the caller
                # compares them with what the reads saw (`ConvergeResult.tables`) instead of asking
                # every router again after the window.
                with_tables = reads.done_since(settled_at) and now >= decides_at
                sweep_began = time.monotonic()
                results = _parallel(functools.partial(self._protocol_state, tables=with_tables), self.routers)
                proto_checked = time.monotonic()
                exited = self.daemons_exited()
                if exited:
                    # A dead daemon never settles: say so now instead of waiting out the timeout.
                    return ConvergeResult(False, round(proto_checked - t0, 3), [f"{d} exited" for d in exited])
                sig = tuple(tuple(r[0]) for r in results)
                down = [d for r in results for d in r[1]]
                unexpected = [d for d in down if not d.startswith(expect_down)] if expect_down else down
                moving = [m for r in results for m in r[2]]
                if sig != proto_sig:
                    # The first look is not a change; a later difference is (dated to the look
                    # that saw it, an upper bound).
                    if proto_sig is not None:
                        proto_changed = proto_checked
                    proto_sig = sig
                # Routes that moved while vtysh was being asked count before any decision.
                for n in self.routers:
                    fib = self._fib(n)
                    if last_fib[n] != fib:
                        last_fib[n] = fib
                        fib_changed[n] = proto_checked
                now = time.monotonic()
                # The window runs from the last change of routes *or* protocol state: a session
                # that has just come up has not sent its routes yet (corpus
                # bgp_aggregate_address_route_map: routes 1.1 s after Established, while the
                # FIB had been still for 3.6 s). Settled is decided on a sweep taken after the
                # window had run, never on a look from its start.
                settled_at = max(max(fib_changed.values(), default=t0), proto_changed)
                if not moving:
                    # Nothing transient: read the network now (inside the window); a change from
                    # here on makes those reads void and they are run again.
                    reads.launch_unless_valid(settled_at)
                if not moving and now >= not_before:
                    if (not unexpected and proto_checked - settled_at >= stable_for - 0.05) or \
                            proto_checked - settled_at >= quiet - 0.05:
                        if reads.held(settled_at, sweep_began):
                            tables = dict(zip(self.routers, (r[3] for r in results), strict=True)) \
                                if with_tables else None
                            return ConvergeResult(True, round(settled_at - t0, 3), [], down=sorted(down),
                                                  alongside=reads.future, tables=tables)
            if now - t0 >= timeout:
                still = sorted(set(moving + down))
                recent = [f"{n}: routes changed {now - t:.1f} s ago" for n, t in sorted(fib_changed.items())
                          if now - t < stable_for]
                return ConvergeResult(False, round(now - t0, 3), still + recent or ["state still changing"])
            # Sleep until the next thing that can happen: a routing message, the first look, the
            # end of the window, or the next look at a transient state.
            fib_last_change = max(fib_changed.values(), default=t0)
            settled_at = max(fib_last_change, proto_changed)
            wake = [t0 + timeout, fib_last_change + (early_look if proto_sig is None else first_look)]
            if reads.running():
                # Once the window has run, the decisive sweep waits for the reads to end.
                wake.append(max(now + 0.05, max(settled_at + (quiet if unexpected else stable_for), not_before)))
            if proto_checked > fib_last_change:
                wake.append(max(settled_at + stable_for, not_before))
                if moving:
                    wake.append(proto_checked + check_every)
                if unexpected:
                    wake += [settled_at + quiet, proto_checked + max(check_every, stable_for)]
            until = min(w for w in wake if w > now) if any(w > now for w in wake) else now
            # Messages only wake us; the content of /proc decides whether the FIB changed. The
            # 1 s cap re-reads every FIB even without a message (a lost notification).
            pause = min(max(until - now, 0.01), 1.0)
            if watch is not None:
                woke = watch.wait(pause)
                nodes = self.routers if pause >= 1.0 and not woke else sorted(woke)
            else:
                time.sleep(min(pause, 0.2))
                nodes = self.routers
            seen = time.monotonic()
            for n in nodes:
                fib = self._fib(n)
                if last_fib.get(n) != fib:
                    last_fib[n] = fib
                    fib_changed[n] = seen

    # ------------------------------------------------------------------ snapshot

    def _snapshot_cmds(self, node: str) -> list[str]:
        daemons = self.topology.nodes[node].daemons
        cmds = ["show ip route json", "show ipv6 route json", "show interface json"]
        if "bgpd" in daemons:
            cmds += ["show bgp vrf all summary json", "show bgp ipv4 unicast json", "show bgp ipv6 unicast json"]
        if "ospfd" in daemons:
            cmds.append("show ip ospf neighbor json")
        if "ospf6d" in daemons:
            cmds.append("show ipv6 ospf6 neighbor json")
        if "bfdd" in daemons:
            cmds.append("show bfd peers json")
        return cmds

    def _node_snapshot(self, node: str) -> dict[str, Any]:
        cmds = self._snapshot_cmds(node)
        return _node_tables(dict(zip(cmds, self.vtysh_json(node, *cmds), strict=True)))

    def loopbacks(self, nodes: dict[str, Any] | None = None) -> dict[str, list[str]]:
        """Router -> its host addresses on lo (IPv4 /32, IPv6 /128): the reachability targets."""
        if nodes is None:
            nodes = {n: {"interfaces": _interfaces(self.vtysh_json(n, "show interface json")[0])} for n in self.routers}
        return loopbacks_of(nodes)

    def snapshot(self, reachability: bool = True) -> dict[str, Any]:
        nodes = dict(zip(self.routers, _parallel(self._node_snapshot, self.routers), strict=True))
        snap: dict[str, Any] = {"nodes": nodes}
        if reachability:
            snap["reachability"] = self.reachability(self.loopbacks(nodes))
        return snap

    def reachability(self, loopbacks: dict[str, list[str]]) -> dict[str, Any]:
        pairs, sampled, seed = reachability_pairs(self.topology.name, self.routers, loopbacks)
        by_src: dict[str, list[str]] = {}
        for s, _, a in pairs:
            by_src.setdefault(s, []).append(a)
        results = dict(zip(by_src, _parallel(lambda s: self._ping_many(s, sorted(set(by_src[s])), loopbacks[s]),
                                             by_src), strict=True))
        return {"pairs": {f"{s}->{d}:{a}": results[s].get(a, False) for s, d, a in pairs},
                "sampled": sampled, "seed": seed}

    def ping_pairs(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        """Ping each (router, address) pair, sourced from the router's loopback as `reachability` does.

        For a twin split across hosts (twin/split.py): the pairs are chosen over the whole lab,
        and each host pings from its own routers.
        """
        by_src: dict[str, list[str]] = {}
        for src, address in pairs:
            if src not in self.holders:
                raise TwinError(f"unknown router {src!r} (routers: {', '.join(self.routers)})")
            ipaddress.ip_address(address)
            by_src.setdefault(src, []).append(address)
        own = self.loopbacks()
        results = dict(zip(by_src, _parallel(lambda s: self._ping_many(s, sorted(set(by_src[s])), own.get(s, [])),
                                             by_src), strict=True))
        return {(s, a): results[s].get(a, False) for s, a in pairs}

    def _ping_many(self, src: str, addresses: list[str], sources: list[str]) -> dict[str, bool]:
        # Loopback to loopback: the ping is sourced from the router's own loopback, so the reply
        # must be routed back to it (a link address is often not announced anywhere).
        # Echo requests sent from a thread inside the namespace (twin/icmp.py: the judgement of
        # `ping -c 2 -i 0.2 -W 1`, without a process per pair); one `ping` process per pair if the
        # raw socket cannot be had.
        try:
            return icmp.ping_many(self.ns(src), addresses, sources)
        except OSError:
            pass
        cmds = []
        for a in addresses:
            flag = _source_flag(a, sources)
            cmds.append(f"(ping -n -q -c 2 -i 0.2 -W 1 {flag} {a} >/dev/null 2>&1 && echo 'ok {a}' || echo 'fail {a}') &")
        script = "\n".join(cmds) + "\nwait"
        out = _run(["ip", "netns", "exec", self.ns(src), "sh", "-c", script], check=False, timeout=60).stdout
        res = {}
        for line in out.splitlines():
            status, _, addr = line.partition(" ")
            res[addr] = status == "ok"
        return res

    def reach(self, src: str, address: str, count: int = 1, source: str | None = None) -> bool:
        """Ping `address` from node `src`. The source address is `src`'s loopback of the same
        family when it has one (as in the reachability matrix); pass `source=""` to let the
        kernel pick the outgoing interface's address instead."""
        if src not in self.topology.nodes or self.topology.nodes[src].role == "bridge":
            raise TwinError(f"unknown node {src!r}")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise TwinError(f"not an IP address: {address!r}") from None
        if source is None and src in self.holders:
            flag = _source_flag(address, self.loopbacks({src: {"interfaces": _interfaces(
                self.vtysh_json(src, "show interface json")[0])}})[src])
        elif source:
            ipaddress.ip_address(source)
            flag = f"-I {source}"
        else:
            flag = ""
        # The same judgement as the `ping` below (COUNT requests 0.2 s apart, a reply within 1 s
        # of the last), sent from a thread inside the namespace (twin/icmp.py): no process, and
        # a request that cannot even leave (no route at the source) is a certain "not reached"
        # at once, where iputils' ping still waits out its 1 s (a `must_not_reach` to an
        # unrouted address cost every run a second).
        try:
            return icmp.ping_many(self.ns(src), [address], flag.split()[1:], tries=max(1, count))[address]
        except OSError:
            pass  # no raw socket here: the ping process
        proc = _run(["ip", "netns", "exec", self.ns(src), "ping", "-n", "-q", "-c", str(max(1, count)),
                     "-i", "0.2", "-W", "1", *flag.split(), address], check=False, timeout=30 + count)
        return proc.returncode == 0

    # ------------------------------------------------------------------ forwarding tables

    def _node_fib(self, node: str) -> dict[str, Any]:
        # One process per router: three `ip -j` documents, one per line.
        script = "ip -j -4 route show table all; echo; ip -j -6 route show table all; echo; ip -j addr show"
        out = _run(["ip", "netns", "exec", self.ns(node), "sh", "-c", script], timeout=60).stdout
        docs = parse_json_stream(out)
        if len(docs) != 3:
            raise TwinError(f"{node}: could not read the kernel forwarding table (ip -j printed {len(docs)} of 3)")
        return fib_normalize(docs[0], docs[1], docs[2])

    def fib(self) -> dict[str, Any]:
        nodes = dict(zip(self.routers, _parallel(self._node_fib, self.routers), strict=True))
        return {"nodes": nodes, "links": fib_links(self.topology)}

    def probe(self, src: str, address: str) -> dict[str, Any]:
        if src not in self.holders:
            raise TwinError(f"unknown router {src!r}")
        ipaddress.ip_address(address)
        flag = _source_flag(address, self.loopbacks({src: {"interfaces": _interfaces(
            self.vtysh_json(src, "show interface json")[0])}})[src])
        # -t 64: a loop shows as "Time to live exceeded" from a router on it, within a second.
        proc = _run(["ip", "netns", "exec", self.ns(src), "ping", "-n", "-c", "1", "-W", "1", "-t", "64",
                     *flag.split(), address], check=False, timeout=15)
        text = (proc.stdout + proc.stderr).strip()
        return {"replied": proc.returncode == 0, "ttl_exceeded": "Time to live exceeded" in text,
                "unreachable": "nreachable" in text or "Prohibited" in text,
                "output": "\n".join(ln for ln in text.splitlines() if ln and not ln.startswith("---"))[:500]}

    def set_link(self, node: str, iface: str, up: bool) -> None:
        if node not in self.holders:
            raise TwinError(f"unknown router {node!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,15}", iface):
            raise TwinError(f"not an interface name: {iface!r}")
        _run(["ip", "-n", self.ns(node), "link", "set", "dev", iface, "up" if up else "down"])

    # ------------------------------------------------------------------ change

    def _tmpfile(self, node: str, text: str, kind: str) -> Path:
        self._apply_seq += 1
        path = self.node_dir(node) / "tmp" / f"{kind}-{self._apply_seq}.conf"
        path.write_text(text if text.endswith("\n") else text + "\n")
        return path

    def apply(self, node: str, lines: str) -> ApplyResult:
        """Enter configuration mode in `node` and apply `lines`; refused lines come back with FRR's words."""
        cmd = self._nsenter(node)
        path = self._tmpfile(node, lines, "apply")
        proc = _run([*cmd, "vtysh", "-f", str(path)], check=False, timeout=120)
        self._policy_touched(node, lines)
        rejected, _warnings = classify_vtysh_output(node, proc.stdout + proc.stderr, lines)
        bad = {r.line_no for r in rejected if r.line_no} | {r.line.strip() for r in rejected}
        applied = [ln for i, ln in enumerate(lines.splitlines(), 1)
                   if ln.strip() and not ln.strip().startswith(("!", "#")) and i not in bad and ln.strip() not in bad]
        return ApplyResult(node=node, applied=applied, rejected=rejected, output=proc.stdout + proc.stderr,
                           exit_status=proc.returncode)

    def _policy_touched(self, node: str, lines: str) -> None:
        """Remember when bgpd will apply a routing-policy change it has just been given.

        bgpd does not re-evaluate routes when a route-map, prefix-list, community-list or
        as-path list changes: it starts its route-map delay timer (`bgp route-map delay-timer`,
        5 s by default) and re-runs the policies when it fires. Measured on labs/triangle: a
        prefix-list change on r1 reached r1's FIB 5.6 s later, with nothing moving before it,
        so a quiet window shorter than that declared the change settled with no effect at all.
        """
        if "bgpd" not in self.topology.nodes[node].daemons or not _POLICY_LINE.search(lines):
            return
        m = _RMAP_DELAY.search(lines) or _RMAP_DELAY.search(self.topology.nodes[node].frr_conf or "")
        delay = float(m.group(1)) if m else RMAP_DELAY_DEFAULT_S
        # The timer started when bgpd took the line, i.e. before now; the margin is for bgpd's
        # own pass over the table once the timer has fired.
        self._policy_not_before = max(self._policy_not_before, time.monotonic() + delay + RMAP_DELAY_MARGIN_S)

    def running_config(self, node: str) -> str:
        out = self.vtysh(node, "show running-config")
        start = out.find("frr version")
        return out[start:] if start >= 0 else out

    def reload_config(self, node: str, config: str, test_only: bool = False,
                      tested: ReloadResult | None = None) -> ReloadResult:
        """Reach `config` with FRR's own frr-reload.py, inside the node's mount namespace.

        `tested`: `reload_plan(node, config)` taken earlier on the same running config (the
        caller checks it has not changed since): its delta is the one the reload applies, so
        frr-reload's `--test` pass is not run a second time."""
        cmd = self._nsenter(node)
        path = self._tmpfile(node, config, "reload")
        if tested is not None and tested.node == node:
            to_delete, to_add, output = list(tested.lines_to_delete), list(tested.lines_to_add), tested.output
        else:
            test = _run([*cmd, "python3", str(FRR_DIR / "frr-reload.py"), "--test", "--stdout", str(path)],
                        check=False, timeout=180)
            to_delete, to_add = _reload_sections(test.stdout)
            output = test.stdout + test.stderr
            if test.returncode != 0:
                return ReloadResult(node, to_delete, to_add, applied=False, output=output)
        if test_only:
            return ReloadResult(node, to_delete, to_add, applied=False, output=output)
        proc = _run([*cmd, "python3", str(FRR_DIR / "frr-reload.py"), "--reload", "--stdout", str(path)],
                    check=False, timeout=180)
        self._policy_touched(node, "\n".join(to_delete + to_add))
        return ReloadResult(node, to_delete, to_add, applied=proc.returncode == 0,
                            output=output + proc.stdout + proc.stderr)

    def reload_plan(self, node: str, config: str) -> ReloadResult | None:
        """frr-reload's `--test` delta to reach `config`, for a later `reload_config(tested=)`;
        None when the test itself failed (the reload then tests again and reports it)."""
        cmd = self._nsenter(node)
        path = self._tmpfile(node, config, "reload")
        test = _run([*cmd, "python3", str(FRR_DIR / "frr-reload.py"), "--test", "--stdout", str(path)],
                    check=False, timeout=180)
        if test.returncode != 0:
            return None
        to_delete, to_add = _reload_sections(test.stdout)
        return ReloadResult(node, to_delete, to_add, applied=False, output=test.stdout + test.stderr)

    # ------------------------------------------------------------------ teardown

    def daemons_exited(self) -> list[str]:
        """'<daemon> on <router>' for every FRR daemon of this twin that is no longer running.

        A daemon that crashed (or was killed) mid-run leaves its router answering `vtysh` with
        "<daemon> is not running": a snapshot then just shows fewer sessions, which must not be
        read as the change's effect. The pipeline asks this before teardown.
        """
        exited = []
        for node, daemons in sorted((self.state.get("daemons") or {}).items()):
            for daemon, (pid, start) in sorted(daemons.items()):
                if not runstate.pid_matches(pid, start) or runstate.is_zombie(pid):
                    exited.append(f"{daemon} on {node}")
        return exited

    def _destroy(self) -> list[str]:
        if not self.dir.exists():
            return []
        leftovers = runstate.destroy(self.dir)
        for proc in self._holder_procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                leftovers.append(f"holder {proc.pid}")
        return leftovers

    def teardown(self) -> None:
        """Kill this twin's processes, delete its namespaces and its run folder. Idempotent."""
        leftovers = self._destroy()
        self._torn_down = True
        if leftovers:
            raise TwinError(f"teardown of {self.prefix}* left {', '.join(leftovers)}; `manage.py twin_reap` "
                            "retries once the owner process has exited")

    def __enter__(self) -> NetnsTwin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


# ---------------------------------------------------------------------- normalisation (TWIN.md §4)


NEIGH_SYSCTL = "/proc/sys/net/{family}/neigh/default/gc_thresh{n}"
NEIGH_TARGET = {2: 8192, 3: 16384}


def _raise_neighbour_limits(links: int) -> list[str]:
    """Make room in the kernel's neighbour (ARP/ND) table for a large twin.

    The table is one per host, shared by every network namespace: with the default
    gc_thresh3 of 1024 entries, a 200-router fabric (784 links, two entries each) overflowed
    it ("neighbour: arp_cache: neighbor table overflow!"), and BGP sessions hung in Connect
    for good. Limits are only ever raised, never lowered, and each change is reported.
    """
    changes: list[str] = []
    if 2 * links < 256:
        return changes
    for family in ("ipv4", "ipv6"):
        for n, target in NEIGH_TARGET.items():
            path = NEIGH_SYSCTL.format(family=family, n=n)
            try:
                current = int(Path(path).read_text())
                if current < target:
                    with open(path, "w") as fh:
                        fh.write(str(target))
                    changes.append(f"net.{family}.neigh.default.gc_thresh{n}: {current} -> {target}")
            except (OSError, ValueError):
                continue
    return changes


def loopbacks_of(nodes: dict[str, Any]) -> dict[str, list[str]]:
    """Router -> its host addresses on lo (IPv4 /32, IPv6 /128), from snapshot nodes."""
    out = {}
    for n, snap in nodes.items():
        addrs = snap["interfaces"].get("lo", {}).get("addresses", [])
        out[n] = sorted(a.split("/")[0] for a in addrs
                        if (a.endswith("/32") and ":" not in a and not a.startswith("127."))
                        or (a.endswith("/128") and a != "::1/128" and not a.startswith("fe80")))
    return out


def reachability_pairs(lab: str, routers: list[str], loopbacks: dict[str, list[str]]
                       ) -> tuple[list[tuple[str, str, str]], bool, int | None]:
    """The (source, destination, address) pairs a reachability matrix pings, whether sampled, and the seed."""
    pairs = [(s, d, a) for s in sorted(loopbacks) for d in sorted(loopbacks) if s != d for a in loopbacks[d]]
    sampled = len(routers) > SMALL_LAB_ROUTERS and len(pairs) > SAMPLE_PAIRS
    seed = None
    if sampled:
        # Same seed for every snapshot of this twin, so baseline/after/rollback ping the same pairs.
        seed = int(hashlib.sha256(f"{lab}/{','.join(routers)}".encode()).hexdigest()[:8], 16)
        pairs = sorted(random.Random(seed).sample(pairs, SAMPLE_PAIRS))
    return pairs, sampled, seed


def _source_flag(address: str, sources: list[str]) -> str:
    v6 = ":" in address
    same = [s for s in sources if (":" in s) == v6]
    return f"-I {same[0]}" if same else ""


def _bgp_admin_down(info: dict[str, Any]) -> bool:
    return "Admin" in str(info.get("state", "")) or info.get("peer_state") == "Admin"


def _bgp_peers(data: Any) -> dict[str, dict[str, Any]]:
    """`show bgp vrf all summary json` -> {peer[%vrf]: {state, remote_as, local_as, pfx_rcd, pfx_snt}}."""
    peers: dict[str, dict[str, Any]] = {}
    if not isinstance(data, dict):
        return peers
    for vrf, afs in data.items():
        if not isinstance(afs, dict):
            continue
        for af in sorted(afs):
            body = afs[af]
            if not isinstance(body, dict) or not isinstance(body.get("peers"), dict):
                continue
            for peer, p in body["peers"].items():
                key = peer if vrf == "default" else f"{peer}%{vrf}"
                entry = peers.setdefault(key, {
                    "state": p.get("state", "unknown"), "remote_as": p.get("remoteAs"),
                    "local_as": p.get("localAs", body.get("as")), "pfx_rcd": 0, "pfx_snt": 0,
                    "peer_state": p.get("peerState"),
                })
                entry["pfx_rcd"] += int(p.get("pfxRcd", 0) or 0)
                entry["pfx_snt"] += int(p.get("pfxSnt", 0) or 0)
    return peers


def _bgp_pending(data: Any) -> list[str]:
    """Established peers whose initial exchange is unfinished, or with messages still queued.

    `show bgp vrf all neighbors json` -> ["bgp PEER End-of-RIB not yet received (ipv4Unicast)", ...].
    End-of-RIB (RFC 4724) is only expected from a peer that advertised the graceful-restart
    capability; other peers are judged by their queues alone.
    """
    out: list[str] = []
    if not isinstance(data, dict):
        return out
    for vrf, peers in data.items():
        if not isinstance(peers, dict):
            continue
        for peer, p in peers.items():
            if not isinstance(p, dict) or p.get("bgpState") != "Established":
                continue
            key = peer if vrf == "default" else f"{peer}%{vrf}"
            stats = p.get("messageStats") or {}
            if int(stats.get("depthInq") or 0) or int(stats.get("depthOutq") or 0):
                out.append(f"bgp {key} messages queued")
            caps = p.get("neighborCapabilities") or {}
            if "eceived" not in str(caps.get("gracefulRestart", "")):
                continue
            gr = p.get("gracefulRestartInfo") or {}
            for af in sorted(p.get("addressFamilyInfo") or {}):
                if not (gr.get("endOfRibRecv") or {}).get(af):
                    out.append(f"bgp {key} End-of-RIB not yet received ({af})")
                elif not (gr.get("endOfRibSend") or {}).get(af):
                    out.append(f"bgp {key} End-of-RIB not yet sent ({af})")
    return out


def _ospf_interfaces(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        return {}
    ifaces = data.get("interfaces", data)
    return {name: str(i.get("state", "")) for name, i in ifaces.items()
            if isinstance(i, dict) and i.get("ospfEnabled", True) and "state" in i}


def _ospf_neighbors(data: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(data, dict):
        return out
    for rid, adjs in (data.get("neighbors") or {}).items():
        for adj in adjs if isinstance(adjs, list) else [adjs]:
            iface = str(adj.get("ifaceName", "")).split(":")[0]
            state = str(adj.get("nbrState") or adj.get("state") or "")
            # "Full/DR" -> "Full": the DR/BDR role depends on start timing, not on the config.
            out[f"{rid}@{iface}"] = state.split("/")[0]
    return out


def _ospf6_interfaces(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        return {}
    # FRR 8.4 calls it "ospf6InterfaceState"; interfaces not attached to an area have none.
    return {name: str(i.get("ospf6InterfaceState") or i.get("state")) for name, i in data.items()
            if isinstance(i, dict) and i.get("attachedToArea") and ("ospf6InterfaceState" in i or "state" in i)}


def _ospf6_neighbors(data: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(data, dict):
        return out
    for n in data.get("neighbors") or []:
        out[f"{n.get('neighborId')}@{n.get('interfaceName')}"] = str(n.get("state", ""))
    return out


def _bfd_peers(data: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in data if isinstance(data, list) else []:
        key = f"{p.get('peer')}|{p.get('interface', '')}"
        if p.get("vrf") not in (None, "default"):
            key += f"%{p['vrf']}"
        if p.get("multihop"):
            key += "|multihop"
        out[key] = {"status": p.get("status", "unknown")}
    return out


def _nexthop(nh: dict[str, Any]) -> str | None:
    if not nh.get("active", True) and "active" in nh:
        return None
    if nh.get("unreachable") or nh.get("blackhole") or nh.get("reject"):
        return "blackhole"
    ip = nh.get("ip", "")
    iface = nh.get("interfaceName", "")
    if nh.get("directlyConnected") and not ip:
        return f"@{iface}"
    return f"{ip}@{iface}" if iface else str(ip or "?")


def _routes(data: Any) -> dict[str, dict[str, Any]]:
    """Selected route per prefix: protocol, distance, metric, sorted next hops (TWIN.md §4)."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(data, dict):
        return out
    for prefix, entries in data.items():
        if prefix.lower().startswith("fe80:"):
            # IPv6 link-local: FRR shows one connected fe80::/64 for the whole router, on whichever
            # interface came up last, so a flapped link "changed" it. It says nothing about
            # reachability (the FIB reader drops it too, twin/fib.py).
            continue
        for e in entries if isinstance(entries, list) else []:
            if not e.get("selected"):
                continue
            hops = sorted({h for nh in e.get("nexthops", []) if (h := _nexthop(nh))})
            out[prefix] = {"protocol": e.get("protocol"), "distance": e.get("distance", 0),
                           "metric": e.get("metric", 0), "nexthops": hops}
    return out


def _bgp_best(data: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(data, dict):
        return out
    for prefix, paths in (data.get("routes") or {}).items():
        for p in paths if isinstance(paths, list) else []:
            if not p.get("bestpath"):
                continue
            hops = p.get("nexthops") or [{}]
            out[prefix] = {"as_path": p.get("path", ""), "nexthop": hops[0].get("ip", ""),
                           "origin": p.get("origin", ""), "peer": p.get("peerId", "")}
    return out


def _interfaces(data: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(data, dict):
        return out
    for name, i in sorted(data.items()):
        if not isinstance(i, dict):
            continue
        addrs = sorted(a.get("address", "") for a in i.get("ipAddresses", []) if isinstance(a, dict))
        out[name] = {"admin": str(i.get("administrativeStatus", "")), "oper": str(i.get("operationalStatus", "")),
                     "addresses": addrs}
    return out


_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d+ ")


def _node_tables(v: dict[str, Any]) -> dict[str, Any]:
    """One router's part of a snapshot, from the values of its `_snapshot_cmds` (by command)."""
    routes = {**_routes(v["show ip route json"]), **_routes(v["show ipv6 route json"])}
    bgp = {}
    for peer, info in _bgp_peers(v.get("show bgp vrf all summary json")).items():
        bgp[peer] = {k: info[k] for k in ("state", "remote_as", "local_as", "pfx_rcd", "pfx_snt")}
    best = {**_bgp_best(v.get("show bgp ipv4 unicast json")), **_bgp_best(v.get("show bgp ipv6 unicast json"))}
    return {
        "routes": dict(sorted(routes.items())),
        "bgp": dict(sorted(bgp.items())),
        "bgp_best": dict(sorted(best.items())),
        "ospf": {k: {"state": s} for k, s in sorted(_ospf_neighbors(v.get("show ip ospf neighbor json")).items())},
        "ospf6": {k: {"state": s} for k, s in sorted(_ospf6_neighbors(v.get("show ipv6 ospf6 neighbor json")).items())},
        "interfaces": _interfaces(v["show interface json"]),
        "bfd": {k: {"status": i["status"]} for k, i in sorted(_bfd_peers(v.get("show bfd peers json")).items())},
    }


def _reload_sections(text: str) -> tuple[list[str], list[str]]:
    """frr-reload.py --test output -> (lines to delete, lines to add)."""
    sections: dict[str, list[str]] = {"delete": [], "add": []}
    current = None
    for line in text.splitlines():
        if line.startswith("Lines To Delete"):
            current = "delete"
        elif line.startswith("Lines To Add"):
            current = "add"
        elif _LOG_LINE.match(line):
            continue  # frr-reload's own log, also printed with --stdout
        elif current and line.strip() and not set(line.strip()) <= {"="}:
            sections[current].append(line.rstrip())
    return sections["delete"], sections["add"]
