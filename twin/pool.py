"""Warm twins: a long-lived worker keeps one converged baseline twin per lab it has served.

A cold run spawns a twin, settles it, snapshots the baseline S0, applies, settles, rolls back
and tears down. Everything before the change is the same for every run of a lab, so a worker
that keeps the twin after a run whose rollback was proven skips it the next time:

* `acquire` hands out an idle twin of the lab only when the lab's files still give the same
  digest (topology, every node's config and daemons) and a fresh snapshot and every router's
  running config equal the baseline recorded when the twin entered the pool; otherwise the
  twin is torn down and the caller gets None (and spawns cold). A leased twin is never handed
  to another run: concurrent runs of one lab get distinct twins.
* `release` takes the twin back only when the run's rollback was proven (the caller says so)
  *and* the pool sees it for itself: the snapshot after rollback equals the baseline (the
  whole snapshot, not only what the diff reads) and every router's running config equals the
  baseline config. Anything else tears the twin down.
* The pool holds at most `budget_mb` of FRR memory (PSS of the twin's daemons), evicting the
  least recently used idle twin; a twin larger than the budget is never kept.
* Every twin is torn down when the process exits (atexit, and SIGTERM/SIGHUP when nobody else
  handles them); a pool whose process was killed is removed by the reaper like any twin whose
  owner died (each twin's run record names this process as its owner).

Why the evidence is as strong as with a fresh twin: the run's baseline is a snapshot taken at
the start of the run and compared equal to one the twin reached by the full settling predicate
on the same configs, with the same routers' running configs, so the state the change is applied
to is the state a fresh twin would have settled in (docs/twin.md, "Warm twins").
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runstate
from .base import Topology

log = logging.getLogger("aegis.twin")


def topology_digest(topology: Topology) -> str:
    """sha256 over everything of the lab a twin is built from (nodes, configs, daemons, links)."""
    data = dataclasses.asdict(topology)
    data.pop("warnings", None)
    return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def snapshot_digest(snapshot: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(snapshot, sort_keys=True, separators=(",", ":")).encode()
                                      ).hexdigest()


def twin_memory_mb(twin: Any) -> float:
    """PSS of every daemon of the twin (MiB), from /proc/PID/smaps_rollup."""
    total_kb = 0
    for daemons in (getattr(twin, "state", {}) or {}).get("daemons", {}).values():
        for pid, start in daemons.values():
            if not runstate.pid_matches(pid, start):
                continue
            total_kb += runstate.pss_kb(pid)
    return round(total_kb / 1024, 1)


@dataclass
class WarmTwin:
    """A twin held by the pool, with the baseline it was proven to return to."""

    lab: str
    digest: str  # topology_digest of the lab it was built from
    twin: Any
    baseline: dict[str, Any]
    baseline_digest: str
    configs: dict[str, str]  # every router's running config at the baseline
    memory_mb: float = 0.0
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    uses: int = 0
    leased: bool = False


@dataclass
class Lease:
    """What `acquire` hands a run: the twin and the baseline it was just verified to be in."""

    entry: WarmTwin
    snapshot: dict[str, Any]  # taken now, equal to entry.baseline

    @property
    def twin(self) -> Any:
        return self.entry.twin


class TwinPool:
    """Warm baseline twins per lab for one process; thread-safe."""

    def __init__(self, budget_mb: float, status_dir: str | Path | None = None, holder: str = "worker") -> None:
        self.budget_mb = float(budget_mb)
        self._entries: list[WarmTwin] = []
        self._lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._closed = False
        self.holder = holder  # what kind of process holds the pool: worker, celery, twin_pool
        self.started = time.time()
        # One small JSON file per pool (pool_status_read), rewritten on every change, so a process
        # that cannot see the twins (the web admin, not root) can show what is held, and by whom.
        self.status_file = Path(status_dir) / f"{os.getpid()}.json" if status_dir else None
        self._status_write()

    # ------------------------------------------------------------------ runs

    def acquire(self, topology: Topology) -> Lease | None:
        """An idle warm twin of this lab, verified to be at its baseline; None means spawn cold."""
        digest = topology_digest(topology)
        with self._lock:
            if self._closed:
                return None
            stale = [e for e in self._entries if e.lab == topology.name and e.digest != digest and not e.leased]
            for e in stale:
                self._entries.remove(e)
            entry = next((e for e in self._entries if e.digest == digest and not e.leased), None)
            if entry is not None:
                entry.leased = True
        for e in stale:
            self._discard(e, "the lab's files changed since the twin was built")
        if entry is None:
            return None
        why = ""
        try:
            # Both reads at once: the snapshot's pings wait on the network, vtysh on the daemons.
            with ThreadPoolExecutor(max_workers=1) as ex:
                configs = ex.submit(self.running_configs, entry.twin)
                snap = entry.twin.snapshot()
                configs_now = configs.result()
            if snap != entry.baseline:
                why = "its state no longer equals the baseline"
            elif configs_now != entry.configs:
                why = "a running config no longer equals the baseline"
        except Exception as exc:  # noqa: BLE001 - a twin that cannot even be read is not reused
            why = f"it could not be checked: {exc}"
        if why:
            with self._lock:
                if entry in self._entries:
                    self._entries.remove(entry)
            self._discard(entry, why)
            return None
        entry.uses += 1
        self._mark(entry)
        return Lease(entry, snap)

    def adopt(self, topology: Topology, twin: Any, baseline: dict[str, Any], after: dict[str, Any],
              expect_configs: dict[str, str] | None = None, min_memory_mb: float = 0.0) -> bool:
        """Keep a cold twin after a run whose rollback was proven: `after` (S2) must equal
        `baseline` (S0), and with `expect_configs` (the running configs the twin had when it was
        spawned: a twin agent's own record) every router's running config must equal it.
        `min_memory_mb`: the least the twin is counted for (a twin agent charges its admission
        estimate, so its capacity never counts a warm twin for less than a new one).
        Returns whether the pool kept it (else the caller tears it down)."""
        if self._closed or self.budget_mb <= 0 or after != baseline:
            return False
        try:
            configs = self.running_configs(twin)
        except Exception:  # noqa: BLE001
            return False
        if expect_configs is not None and configs != expect_configs:
            return False
        entry = WarmTwin(lab=topology.name, digest=topology_digest(topology), twin=twin, baseline=baseline,
                         baseline_digest=snapshot_digest(baseline), configs=configs,
                         memory_mb=max(twin_memory_mb(twin), float(min_memory_mb)), uses=1)
        if entry.memory_mb > self.budget_mb:
            return False
        with self._lock:
            if self._closed:
                return False
            self._entries.append(entry)
        self._mark(entry)
        self._evict()
        return True

    def release(self, lease: Lease, after: dict[str, Any] | None, rollback_verified: bool) -> bool:
        """Give a leased twin back. Kept only when the run proved its rollback and the pool sees
        the baseline again (whole snapshot and every running config); else torn down."""
        entry = lease.entry
        why = ""
        if not rollback_verified or after is None:
            why = "the run's rollback was not proven"
        elif after != entry.baseline:
            why = "the state after rollback differs from the baseline"
        else:
            try:
                if self.running_configs(entry.twin) != entry.configs:
                    why = "a running config after rollback differs from the baseline"
            except Exception as exc:  # noqa: BLE001
                why = f"it could not be checked: {exc}"
        with self._lock:
            if why or self._closed:
                if entry in self._entries:
                    self._entries.remove(entry)
            else:
                entry.leased = False
                entry.last_used = time.monotonic()
        if why or self._closed:
            self._discard(entry, why or "the pool is closing")
            return False
        self._mark(entry)
        self._evict()
        return True

    # ------------------------------------------------------------------ bookkeeping

    def holdings(self) -> list[dict[str, Any]]:
        """What the pool holds, for lab_check and the admin."""
        with self._lock:
            return [self._holding(e) for e in self._entries]

    @staticmethod
    def _holding(e: WarmTwin) -> dict[str, Any]:
        idle = time.monotonic() - e.last_used
        return {"lab": e.lab, "twin_id": getattr(e.twin, "run_id", None), "routers": len(e.baseline.get("nodes", {})),
                "memory_mb": e.memory_mb, "baseline_digest": e.baseline_digest, "lab_digest": e.digest,
                "uses": e.uses, "leased": e.leased, "idle_s": round(idle, 1),
                "since": _utc(e.created), "last_used": _utc(time.time() - idle)}

    def memory_mb(self) -> float:
        with self._lock:
            return round(sum(e.memory_mb for e in self._entries), 1)

    def status(self) -> dict[str, Any]:
        """The pool as a whole: who holds it, its budget, and every twin (`holdings`)."""
        twins = self.holdings()
        return {"pid": os.getpid(), "pid_start": runstate.proc_start_time(os.getpid()), "holder": self.holder,
                "started": _utc(self.started), "written": _utc(time.time()), "budget_mb": self.budget_mb,
                "memory_mb": round(sum(t["memory_mb"] for t in twins), 1), "closed": self._closed, "twins": twins}

    def close(self) -> None:
        """Tear down every twin the pool holds (idle or leased). Idempotent."""
        with self._lock:
            self._closed = True
            entries, self._entries = self._entries, []
        for e in entries:
            self._discard(e, "the pool is closing")
        if self.status_file is not None:
            with self._status_lock:
                self.status_file.unlink(missing_ok=True)

    def _status_write(self) -> None:
        if self.status_file is None or self._closed:
            return
        with self._status_lock:
            try:
                self.status_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.status_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.status(), sort_keys=True))
                tmp.chmod(0o644)  # read by the web process's admin page, which may run as another user
                tmp.replace(self.status_file)
            except OSError as exc:
                log.warning("cannot write the warm-pool status file %s: %s", self.status_file, exc)

    def _evict(self) -> None:
        self._evict_while(lambda freed: sum(e.memory_mb for e in self._entries) > self.budget_mb,
                          f"memory budget {self.budget_mb:g} MB (least recently used)")

    def idle_mb(self) -> float:
        """Memory of the twins no run holds now (what `evict_idle` could free)."""
        with self._lock:
            return round(sum(e.memory_mb for e in self._entries if not e.leased), 1)

    def evict_idle(self, mb: float) -> float:
        """Tear down idle twins, least recently used first, until `mb` has been freed or none is
        idle (a twin agent making room for a spawn). Returns the MB freed."""
        return self._evict_while(lambda freed: freed < mb, f"making room for a new twin ({mb:g} MB needed)")

    def _evict_while(self, more: Any, why: str) -> float:
        """Discard the least recently used idle twin while `more(MB freed so far)` (asked under
        the lock) and one is idle; returns the MB freed."""
        freed = 0.0
        while True:
            with self._lock:
                idle = sorted((e for e in self._entries if not e.leased), key=lambda e: e.last_used)
                if not idle or not more(freed):
                    return freed
                victim = idle[0]
                self._entries.remove(victim)
            freed += victim.memory_mb
            self._discard(victim, why)

    @staticmethod
    def running_configs(twin: Any) -> dict[str, str]:
        routers = twin.topology.routers()
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(routers)))) as ex:
            return dict(zip(routers, ex.map(twin.running_config, routers), strict=True))

    def _mark(self, entry: WarmTwin) -> None:
        """Record in the twin's run record that the pool holds it (read by lab_check across
        processes), and rewrite the pool's status file."""
        self._status_write()
        twin = entry.twin
        state = getattr(twin, "state", None)
        if not isinstance(state, dict) or not getattr(twin, "dir", None):
            return
        h = self._holding(entry)
        state["pool"] = {k: h[k] for k in ("lab", "routers", "baseline_digest", "memory_mb", "uses", "leased",
                                            "since", "last_used")} | {"pid": os.getpid()}
        try:
            runstate.state_write(twin.dir, state)
        except OSError:
            pass

    def _discard(self, entry: WarmTwin, why: str) -> None:
        self._status_write()
        log.info("warm twin %s of %s discarded: %s", getattr(entry.twin, "run_id", "?"), entry.lab, why)
        try:
            entry.twin.teardown()
        except Exception as exc:  # noqa: BLE001 - the reaper retries once this process has exited
            log.warning("teardown of warm twin %s failed: %s", getattr(entry.twin, "run_id", "?"), exc)


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def pool_status_read(status_dir: str | Path) -> list[dict[str, Any]]:
    """Every pool's status file in `status_dir` whose process is still the one that wrote it.

    A file left by a process that died (SIGKILL: no chance to remove it) is listed with
    `stale: True` and no twins: the reaper removes such twins (their owner is gone), so they
    must not be shown as held.
    """
    out: list[dict[str, Any]] = []
    d = Path(status_dir)
    if not d.is_dir():
        return out
    for path in sorted(d.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("twins"), list):
            continue
        alive = runstate.pid_matches(int(doc.get("pid") or 0), doc.get("pid_start"))
        out.append({**doc, "stale": not alive, "twins": doc["twins"] if alive else []})
    return out


def pool_status_prune(status_dir: str | Path) -> list[str]:
    """Remove the status files of pools whose process is gone (killed: it could not remove its
    own); their twins are the reaper's. Returns the files removed. Run where the reaper runs."""
    removed = []
    for st in pool_status_read(status_dir):
        if st["stale"]:
            path = Path(status_dir) / f"{st['pid']}.json"
            try:
                path.unlink()
                removed.append(path.name)
            except OSError:
                continue
    return removed


def warm_twins_held() -> list[dict[str, Any]]:
    """Every warm twin held by a live process on this host, from the run records (lab_check, admin)."""
    out: list[dict[str, Any]] = []
    try:
        paths = sorted(runstate.RUN_ROOT.iterdir()) if runstate.RUN_ROOT.is_dir() else []
    except OSError:  # not root: this process cannot have warm twins to look at
        return out
    for path in paths:
        state = runstate.state_read(path) if path.is_dir() else None
        if not state or not isinstance(state.get("pool"), dict) or not runstate.owner_alive(state):
            continue
        out.append({"twin_id": state.get("run_id"), "owner_pid": state.get("owner_pid"), **state["pool"]})
    return out


# ---------------------------------------------------------------------- one pool per process

_process_pool: TwinPool | None = None
_process_lock = threading.Lock()


def twin_pool_get(budget_mb: float, status_dir: str | Path | None = None, holder: str = "worker") -> TwinPool | None:
    """This process's pool (made on first use), or None when the budget is 0 (warm twins off).

    The pool tears its twins down when the process exits normally or on SIGTERM/SIGHUP (when
    the process had no handler of its own for them); after a SIGKILL the reaper does it.
    """
    global _process_pool
    if budget_mb <= 0:
        return None
    with _process_lock:
        if _process_pool is None:
            _process_pool = TwinPool(budget_mb, status_dir=status_dir, holder=holder)
            atexit.register(_process_pool.close)
            _install_signal_close(_process_pool)
        return _process_pool


def twin_pool_close() -> None:
    """Tear down this process's pool now (e.g. a worker shutting down)."""
    global _process_pool
    with _process_lock:
        pool, _process_pool = _process_pool, None
    if pool is not None:
        pool.close()


def _install_signal_close(pool: TwinPool) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still runs
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)
        if previous not in (signal.SIG_DFL, None):
            continue  # the process handles it (Celery, daphne, the CLI); atexit covers a clean exit

        def handler(signum: int, frame: Any, _sig: signal.Signals = sig) -> None:
            pool.close()
            signal.signal(_sig, signal.SIG_DFL)
            os.kill(os.getpid(), _sig)

        signal.signal(sig, handler)
