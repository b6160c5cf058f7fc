"""Chaos: kill a CLI preflight or a Celery worker at a random pipeline step, many times, and count what is left.

    sudo DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://127.0.0.1:6379/N \\
        .venv/bin/python benchmarks/chaos.py [--runs 100] [--seed 17] [--modes cli,worker]

Each round (seeded: mode, step, delay) starts one AEGIS process that preflights `labs/triangle`
(ship_ready change, sealed, no failure scenarios) on a real netns twin:

* cli: `manage.py preflight labs/triangle --change ... --out DIR` (dispatch inline, its own twin);
* worker: a real `celery worker -P solo` on a private queue, the run submitted through
  `services.run_start` (the web's path);

and SIGKILLs that process (only it, by pid: no `finally`, no teardown) once the run's event for
the chosen step has appeared, plus a random delay of 0-1 s. Nobody runs `twin_reap`. Once the next
AEGIS process has reached its spawn (after a final worker start, for the last round), every
killed round is checked:

* leftovers: a namespace or a live daemon/holder recorded by the killed twin, or its run folder,
  or any process carrying the twin's mark (a daemon that forked after its pid was recorded);
  and at the end, every FRR daemon on the host outside the host's network namespace that no live
  twin owns (`runstate.stray_frr`: what a look at recorded pids alone had missed once);
* the run row: `failed`, its message naming the step the run was in when it died;
* no bundle: no Bundle row or ledger leaf for the run, no bundle.json / report.pdf, no half-staged
  seal folder; `ledger_check` passes at the end.

A round whose run finished before the kill landed (the kill came after the last step) is counted
apart and not as a fault. Figures are printed, never asserted; the exit status is 1 when anything
was left. Needs root, FRR, PostgreSQL and Redis (a private Redis DB: the script deletes its queue).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LAB = REPO / "labs" / "triangle"
CHANGE = LAB / "changes" / "ship_ready.yml"
# Kill points: every pipeline step the triangle's run goes through, and sealing.
KILL_STEPS = ("precheck", "static", "spawn", "converge_baseline", "snapshot_baseline", "apply", "converge_change",
              "snapshot_change", "diff", "dataplane", "invariants", "rollback", "converge_rollback",
              "snapshot_rollback", "teardown", "verdict", "seal")


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


class Round:
    def __init__(self, n: int, mode: str, step: str, delay: float):
        self.n, self.mode, self.step, self.delay = n, mode, step, delay
        self.run_pk: int | None = None
        self.run_id = ""
        self.folder: Path | None = None
        self.twin_dirs: list[Path] = []
        self.twin_state: list[dict] = []
        self.killed_in = ""  # the step the run's last event named when the kill landed
        self.outcome = ""  # killed | finished_first | no_run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--modes", default="cli,worker")
    ap.add_argument("--max-delay", type=float, default=1.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("chaos needs root (real netns twins)")
    if not os.environ.get("CELERY_BROKER_URL") and "worker" in args.modes:
        sys.exit("set CELERY_BROKER_URL (a private Redis DB, e.g. redis://127.0.0.1:6379/10) for worker rounds")
    tmp = Path(tempfile.mkdtemp(prefix="aegis-chaos-"))
    queue = f"aegis-chaos-{os.getpid()}"
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "aegis_site.settings", "AEGIS_TWIN_QUEUE": queue,
        "AEGIS_HOME": str(tmp / "home"), "AEGIS_RUNS_DIR": str(tmp / "runs"),
        "AEGIS_CAPACITY_LEDGER": str(tmp / "capacity.json"), "AEGIS_WARM_TWINS_MB": "0",
        "PYTHONPATH": str(REPO),
    })
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from aegis_base.services import roles_setup
    from evidence.models import Bundle, LedgerEntry
    from evidence.services import ledger_check
    from preflight import services
    from preflight.models import Lab, PreflightRun
    from twin import runstate

    call_command("migrate", verbosity=0)
    roles_setup()
    services.lab_sync()
    user, _ = get_user_model().objects.get_or_create(username="chaos-operator")
    user.groups.add(Group.objects.get(name="operator"))
    lab = Lab.objects.get(name="triangle")
    change = yaml.safe_load(CHANGE.read_text())  # the file as the web form would send it
    settings.AEGIS_RUN_DISPATCH = "celery"

    rng = random.Random(args.seed)
    modes = args.modes.split(",")
    plan = [Round(i, rng.choice(modes), rng.choice(KILL_STEPS), round(rng.uniform(0, args.max_delay), 3))
            for i in range(args.runs)]
    pending: list[Round] = []
    checked: list[tuple[Round, list[str]]] = []
    started_procs: list[subprocess.Popen] = []
    load_before = load()
    t_start = time.monotonic()

    def own_twins(pid: int) -> list[Path]:
        if not runstate.RUN_ROOT.is_dir():
            return []
        out = []
        for d in runstate.RUN_ROOT.iterdir():
            st = runstate.state_read(d) or {}
            if st.get("owner_pid") == pid and st.get("owner_start") in (None, runstate.proc_start_time(pid)):
                out.append(d)
        return out

    def problems_of(r: Round) -> list[str]:
        found = []
        for st in r.twin_state:
            prefix = f"{runstate.NAMESPACE_PREFIX}{st.get('run_id')}-"
            found += [f"namespace {ns}" for ns in os.listdir("/run/netns") if ns.startswith(prefix)] \
                if os.path.isdir("/run/netns") else []
            recorded = [tuple(v) for v in (st.get("holders") or {}).values()]
            recorded += [tuple(v) for d in (st.get("daemons") or {}).values() for v in d.values()]
            found += [f"process {pid}" for pid, start in recorded if runstate.pid_matches(pid, start)
                      and not runstate.is_zombie(pid)]
        found += [f"run folder {d}" for d in r.twin_dirs if d.exists()]
        marks = {str(d) for d in r.twin_dirs}
        found += [f"marked process {pid}" for pid, mark in runstate.marked_pids().items() if mark in marks]
        run = PreflightRun.objects.filter(pk=r.run_pk).first()
        if run is None:
            return found
        last = run.events.exclude(step="run").order_by("-seq").values_list("step", flat=True).first()
        r.killed_in = last or "(none)"
        if run.status != "failed":
            found.append(f"run row {run.run_id} is {run.status}")
        elif last and f"at step {last}" not in run.error:
            found.append(f"run row {run.run_id} does not name its step {last}: {run.error}")
        if Bundle.objects.filter(run_id=run.run_id).exists() or LedgerEntry.objects.filter(ref=run.run_id).exists():
            found.append(f"bundle sealed for {run.run_id}")
        folder = r.folder or Path(settings.AEGIS_RUNS_DIR) / run.run_id
        found += [f"file {folder / n}" for n in ("bundle.json", "report.pdf") if (folder / n).exists()]
        found += [f"staging {p}" for p in folder.parent.glob(f".{folder.name}.sealing-*")] if folder.parent.exists() \
            else []
        return found

    def settle_pending() -> None:
        """The newest process has reached its spawn: everything killed before it must be gone now."""
        while pending:
            r = pending.pop(0)
            checked.append((r, problems_of(r)))

    def wait_for(pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}")

    def start_worker(log_name: str) -> subprocess.Popen:
        log = (tmp / log_name).open("w")
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "aegis_site", "worker", "-Q", queue, "-P",
                                 "solo", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
                                cwd=REPO, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        started_procs.append(proc)
        return proc

    try:
        for r in plan:
            last_pk = PreflightRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            if r.mode == "cli":
                r.folder = tmp / "out" / str(r.n)
                proc = subprocess.Popen([sys.executable, "manage.py", "preflight", str(LAB), "--change", str(CHANGE),
                                         "--out", str(r.folder), "--failures", "none"], cwd=REPO, env=dict(os.environ),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                started_procs.append(proc)
            else:
                proc = start_worker(f"worker-{r.n}.log")
                services.run_start(operator=user, submission=services.Submission(
                    lab=lab, title=f"chaos {r.n}", devices=change["devices"], expect=change["expect"],
                    backend="netns", frameworks=["nist-800-53r5"], options={"failures": "none"}))
            run = wait_for(lambda last_pk=last_pk: PreflightRun.objects.filter(pk__gt=last_pk).order_by("pk").first(), 120,
                           "the run row")
            r.run_pk, r.run_id = run.pk, run.run_id

            def reached(step: str, status: str = "started", run=run) -> bool:
                return run.events.filter(step=step, status=status).exists()

            # The kill point, or the end of the run (it finished first), or the process died on its own.
            def kill_point(run=run, proc=proc, r=r) -> str:
                if reached(r.step):
                    return "step"
                if PreflightRun.objects.filter(pk=run.pk, status__in=["finished", "failed"]).exists():
                    return "done"
                return "exited" if proc.poll() is not None else ""

            why = wait_for(kill_point, 600, f"round {r.n}: step {r.step}")
            if why == "step":
                time.sleep(r.delay)
            # This process has passed its spawn (where any AEGIS process reaps): the earlier
            # killed rounds are due. (A process killed before its spawn leaves them pending.)
            if run.events.filter(step="spawn", status="info").exists():
                settle_pending()
            r.twin_dirs = own_twins(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            r.twin_state = [runstate.state_read(d) or {} for d in r.twin_dirs]
            run.refresh_from_db()
            if run.status == "finished":
                r.outcome = "finished_first"
                continue
            r.outcome = "killed"
            pending.append(r)
            print(f"round {r.n:3d} {r.mode:6s} kill at {r.step:17s}+{r.delay:.2f}s  twins {len(r.twin_dirs)}",
                  flush=True)
        # The next AEGIS process after the last round: a worker start (it reaps and fails at once).
        final = start_worker("worker-final.log")
        wait_for(lambda: "ready" in (tmp / "worker-final.log").read_text(), 120, "the final worker")
        time.sleep(1.0)
        settle_pending()
        os.kill(final.pid, signal.SIGTERM)
        final.wait(60)
    finally:
        for proc in started_procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue, f"_kombu.binding.{queue}", "unacked",
                                                                "unacked_index")
    wall = time.monotonic() - t_start
    report = ledger_check()
    strays = runstate.stray_frr()
    killed = [r for r, _ in checked]
    by_step = collections.Counter(r.killed_in for r in killed)
    by_mode = collections.Counter(r.mode for r in killed)
    bad = [(r, p) for r, p in checked if p]
    print()
    print(f"rounds: {len(plan)} (seed {args.seed}, modes {args.modes}); killed mid-run: {len(killed)} "
          f"({', '.join(f'{m} {c}' for m, c in sorted(by_mode.items()))}); finished before the kill: "
          f"{sum(r.outcome == 'finished_first' for r in plan)}")
    print("kills per step the run was in: " + ", ".join(f"{s} {by_step[s]}" for s in
                                                         [*KILL_STEPS, "(none)"] if by_step[s]))
    print(f"survived (nothing left, row failed naming its step, nothing sealed): {len(killed) - len(bad)}")
    print(f"leftovers: {len(bad)}")
    for r, p in bad:
        print(f"  round {r.n} ({r.mode}, {r.killed_in}): {'; '.join(p)}")
    print(f"stray FRR daemons on the host (outside its netns, owned by no live twin): {len(strays)}")
    for st in strays:
        print(f"  pid {st['pid']} {st['argv']} (netns {st['netns']}, mark {st['mark']})")
    print(f"ledger_check: {'ok' if report.ok else 'FAILED: ' + '; '.join(report.problems)} ({report.size} leaves)")
    print(f"wall {wall:.0f} s; load {load_before} -> {load()}; logs in {tmp}")
    return 1 if bad or strays or not report.ok else 0


if __name__ == "__main__":
    sys.exit(main())
