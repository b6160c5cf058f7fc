"""The on-disk record of one twin run, and teardown from that record alone.

Every run owns `/run/aegis/aegis-<id>/` (RUN_ROOT, overridable with AEGIS_TWIN_RUN_ROOT) with a
`state.json` that is written *before* anything it names is created: the owner PID (with its
start time, so a recycled PID is not mistaken for a live owner), the namespaces, and the
holder and daemon PIDs (each with its start time). Teardown, whether by the twin itself or by
`twin_reap` after a crash, works from this file only, so it removes exactly what that run
created and nothing else:

* a process is killed only when it lives inside one of the run's own network namespaces
  (its /proc/PID/ns/net inode equals the namespace's inode), when it carries the run's mark
  (`AEGIS_TWIN_RUN=<run folder>` in its environment: every process a twin starts inherits it,
  so a daemon that forked after its PID could be recorded is still found, even once its
  namespace is gone), or when it is a recorded PID whose start time and command line still
  match (a daemon of /usr/lib/frr, or the holder);
* killing repeats until a scan finds nothing new: a process that forked between one scan and
  its kill (an FRR daemon going to the background does exactly that) is caught by the next;
* only namespaces listed in the state and carrying the run's `aegis-<id>-` prefix are deleted;
* the run directory is removed last, so a half-finished teardown can be retried.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from .base import NAMESPACE_PREFIX

RUN_ROOT = Path(os.environ.get("AEGIS_TWIN_RUN_ROOT", "/run/aegis"))
NETNS_DIR = Path("/run/netns")
RUN_ID_RE = re.compile(r"^[0-9a-f]{8}$")
# A run folder's name, `aegis-<id>`; group 1 is the id.
RUN_FOLDER_RE = re.compile(rf"^{re.escape(NAMESPACE_PREFIX)}([0-9a-f]{{8}})$")


# The environment variable every process of a twin carries: the run folder's path. A path, not
# the bare id, so that twins recorded under another AEGIS_TWIN_RUN_ROOT are never taken for strays.
MARK = "AEGIS_TWIN_RUN"
FRR_DIR = "/usr/lib/frr"


def new_run_id() -> str:
    """A short random id (8 hex digits) that is not in use on this host."""
    while True:
        rid = secrets.token_hex(4)
        if not (RUN_ROOT / f"{NAMESPACE_PREFIX}{rid}").exists():
            return rid


def run_dir(run_id: str) -> Path:
    return RUN_ROOT / f"{NAMESPACE_PREFIX}{run_id}"


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if PID is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and ')' - split after the last ')'.
    rest = data[data.rfind(b")") + 2:].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def proc_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [p.decode(errors="replace") for p in fh.read().split(b"\0") if p]
    except OSError:
        return []


def pss_kb(pid: int) -> int:
    """Proportional set size of process `pid` in KiB (/proc/PID/smaps_rollup), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def pid_matches(pid: int, start: int | None) -> bool:
    """True when PID exists and is the same process that was recorded (same start time)."""
    now = proc_start_time(pid)
    return now is not None and (start is None or now == start)


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None


def pid_netns_inode(pid: int | str) -> int | None:
    try:
        link = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    m = re.match(r"net:\[(\d+)\]", link)
    return int(m.group(1)) if m else None


def pids_in_netns(inodes: set[int]) -> list[int]:
    """Every process whose network namespace is one of `inodes` (the same test `ip netns pids` uses)."""
    if not inodes:
        return []
    return [pid for pid in _other_pids() if pid_netns_inode(pid) in inodes]


def _other_pids() -> list[int]:
    """Every PID in /proc but this process's own."""
    own = os.getpid()
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != own]


def mark_env(path: Path) -> dict[str, str]:
    """The environment for a process of the twin recorded in `path`: this one's, plus the mark."""
    return dict(os.environ, **{MARK: str(path)})


def proc_mark(pid: int | str) -> str | None:
    """The run folder a process is marked with (its AEGIS_TWIN_RUN), or None."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    key = MARK.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(key):
            return item[len(key):].decode(errors="replace")
    return None


def _ns_link(pid: int | str, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _same_pid_namespace(pid: int | str) -> bool:
    """Whether `pid` lives in this process's PID namespace. A container (the air-gapped stack's
    twin worker) has its own, and its twins are its own business: never touched from outside."""
    own = _ns_link("self", "pid")
    return own is not None and _ns_link(pid, "pid") == own


def marked_pids(path: Path | None = None) -> dict[int, str]:
    """{pid: run folder} of every marked process in this PID namespace (of run `path` only, if given)."""
    found: dict[int, str] = {}
    for pid in _other_pids():
        mark = proc_mark(pid)
        if mark is None or (path is not None and mark != str(path)) or not _same_pid_namespace(pid):
            continue
        found[pid] = mark
    return found


def stray_frr() -> list[dict[str, Any]]:
    """FRR daemons in this PID namespace, outside this network namespace, that no recorded twin owns.

    What a teardown or the reaper should never leave: each is {pid, argv, netns, mark}. A daemon is
    owned when it carries the mark of a run folder that still exists, or lives in a namespace one
    recorded run lists. Nothing here kills: `reap_strays` ends only the marked ones; an unmarked
    FRR daemon elsewhere (another tool's, or an older AEGIS's) is reported for a person to judge.
    """
    own_net = pid_netns_inode("self")
    owned_inodes: set[int] = set()
    if RUN_ROOT.is_dir():
        for d in RUN_ROOT.iterdir():
            for ns in (state_read(d) or {}).get("namespaces", []):
                if (ino := netns_inode(ns)) is not None:
                    owned_inodes.add(ino)
    strays = []
    for pid in _other_pids():
        argv = proc_cmdline(pid)
        if not argv or not argv[0].startswith(FRR_DIR + "/") or not _same_pid_namespace(pid):
            continue
        net = pid_netns_inode(pid)
        if net is None or net == own_net or net in owned_inodes:
            continue
        mark = proc_mark(pid)
        if mark is not None and Path(mark).is_dir():
            continue
        strays.append({"pid": pid, "argv": " ".join(argv)[:120], "netns": net, "mark": mark})
    return strays


def reap_strays() -> list[int]:
    """Kill every marked process whose run folder is gone (a twin's process that outlived its
    teardown); return their PIDs. Only processes AEGIS marked, in this PID namespace."""
    victims = {pid: proc_start_time(pid) for pid, mark in marked_pids().items()
               if RUN_FOLDER_RE.match(Path(mark).name) and not Path(mark).exists()}
    return _kill_and_wait(victims, wait=5.0)


def state_write(path: Path, state: dict[str, Any]) -> None:
    """Atomically replace state.json (a crash never leaves a half-written record)."""
    tmp = path / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path / "state.json")


def state_read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / "state.json").read_text())
    except (OSError, ValueError):
        return None


def owner_alive(state: dict[str, Any]) -> bool:
    pid = state.get("owner_pid")
    return isinstance(pid, int) and pid_matches(pid, state.get("owner_start"))


def _recorded_pids(state: dict[str, Any]) -> list[tuple[int, int | None, str]]:
    out: list[tuple[int, int | None, str]] = []
    for pid, start in (state.get("holders") or {}).values():
        out.append((pid, start, "holder"))
    for daemons in (state.get("daemons") or {}).values():
        for daemon, (pid, start) in daemons.items():
            out.append((pid, start, daemon))
    return out


def _recorded_pid_is_ours(pid: int, start: int | None, what: str) -> bool:
    if not pid_matches(pid, start):
        return False
    argv = proc_cmdline(pid)
    if not argv:
        return False
    if what == "holder":
        return os.path.basename(argv[0]) in ("sleep", "unshare", "ip")
    return argv[0] == f"/usr/lib/frr/{what}"


def become_subreaper() -> bool:
    """Make this process the reaper of the FRR daemons it starts (Linux PR_SET_CHILD_SUBREAPER).

    FRR daemons fork into the background (`-d`): their parent shell exits at once, so they are
    re-parented. Without this they go to PID 1, which reaps a killed daemon whenever it gets to
    it (in a container, seconds later): teardown would return while `ps` still lists a dozen
    `<defunct>` zebras. As their subreaper this process waits for each one itself, so a teardown
    that returns has nothing of its twin left in the process table. Idempotent; False if refused.
    """
    global _SUBREAPER
    if _SUBREAPER is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _SUBREAPER = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _SUBREAPER = False
    return _SUBREAPER


_PR_SET_CHILD_SUBREAPER = 36
_SUBREAPER: bool | None = None


def _reap_if_child(pid: int) -> None:
    """Collect the exit status of `pid` if it is our (adopted) child; anyone else's is left alone."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _gone(pid: int, start: int | None) -> bool:
    """True when the process recorded as (pid, start) no longer exists - not even as a zombie."""
    now = proc_start_time(pid)
    return now is None or (start is not None and now != start)


def destroy(path: Path, wait: float = 10.0) -> list[str]:
    """Tear down the run recorded in `path`. Idempotent. Returns what could not be removed.

    Returns only when every process of the run has left the process table (reaped, when this
    process is their parent or subreaper) and its namespaces are deleted, or says what is left.
    """
    state = state_read(path) or {}
    prefix = f"{NAMESPACE_PREFIX}{state.get('run_id', '')}-"
    namespaces = [ns for ns in state.get("namespaces", []) if state.get("run_id") and ns.startswith(prefix)]
    inodes = {ino for ns in namespaces if (ino := netns_inode(ns)) is not None}

    victims: dict[int, int | None] = {}
    recorded = [pid for pid, start, what in _recorded_pids(state) if _recorded_pid_is_ours(pid, start, what)]
    deadline = time.monotonic() + wait
    # Scan, kill, scan again until a scan finds nothing new: a process that forked between one
    # scan and its kill (an FRR daemon going to the background does) is caught by the next one.
    while True:
        found = set(pids_in_netns(inodes)) | set(marked_pids(path)) | set(recorded)
        new = {pid: start for pid in found if (start := proc_start_time(pid)) is not None
               and victims.get(pid, -1) != start and not is_zombie(pid)}
        if not new:
            break
        _kill(new)
        victims.update(new)
        if time.monotonic() > deadline:
            break
    pending = _wait_gone(victims, deadline)

    # A zombie whose parent is another process (the twin of a dead owner, re-parented to PID 1)
    # has exited and holds nothing but its PID; its parent collects it. Anything else is left.
    leftovers = [f"process {p} ({' '.join(proc_cmdline(p))[:60]})" for p in sorted(pending) if not is_zombie(p)]
    # VXLAN devices of a spawn that died before moving them into their node (twin/split.py);
    # only names of this run's own pattern, and only those still in this namespace.
    for dev in state.get("host_links") or []:
        if isinstance(dev, str) and re.match(rf"^vx{re.escape(str(state.get('run_id', '')))}\d+$", dev) \
                and os.path.exists(f"/sys/class/net/{dev}"):
            subprocess.run(["ip", "link", "del", dev], capture_output=True, text=True)
    existing = [ns for ns in namespaces if (NETNS_DIR / ns).exists()]
    if existing:
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {ns}\n" for ns in existing),
                       capture_output=True, text=True)
    leftovers += [f"namespace {ns}" for ns in namespaces if (NETNS_DIR / ns).exists()]
    if not leftovers:
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            leftovers.append(f"directory {path}")
    return leftovers


def _wait_gone(victims: dict[int, int | None], deadline: float) -> dict[int, int | None]:
    """Wait (reaping our own children) until each (pid, start) has left the process table; the rest."""
    pending = dict(victims)
    while pending:
        for pid in list(pending):
            _reap_if_child(pid)
            if _gone(pid, pending[pid]):
                del pending[pid]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return pending


def _kill(victims: dict[int, int | None]) -> None:
    """SIGKILL each (pid, start) that is still that process. SIGKILL, not SIGTERM: the whole
    network is being thrown away, so there is nothing for a graceful shutdown to clean up, and a
    wedged daemon cannot stall us."""
    for pid, start in victims.items():
        if start is not None and pid_matches(pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _kill_and_wait(victims: dict[int, int | None], wait: float) -> list[int]:
    _kill(victims)
    _wait_gone(victims, time.monotonic() + wait)
    return sorted(victims)


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        return data[data.rfind(b")") + 2:][:1] == b"Z"
    except OSError:
        return False
