"""Start the whole app: migrate, roles, labs, then serve http + websocket.

    python manage.py serve                # one daphne process, http://127.0.0.1:8088/preflight
    python manage.py serve --workers 4    # gunicorn with 4 uvicorn worker processes (REDIS_URL needed)

With no CELERY_BROKER_URL the runs execute on the in-process worker; the netns twin then needs
this process to be root. With `--workers N` (or AEGIS_WEB_WORKERS) above 1, pages are served by N
worker processes (gunicorn + uvicorn workers, websockets on channels through channels-redis), and
twins still run in ONE process only: this one. The web workers relay committed runs to it
(preflight/relay.py); with a Celery broker they queue them to Celery as usual. At a site, run the
web processes unprivileged and a privileged Celery worker (`celery -A aegis_site worker`), see
docs/web.md and docs/deploy.md.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from preflight import relay, worker
from preflight.services import dispatch_mode, lab_sync, runs_recover
from twin.reap import twin_reap_orphans

# Seconds gunicorn gives a worker to finish its requests at stop, before it kills it.
GRACEFUL_S = 10
KEEPALIVE_S = 30


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The web server child gets SIGTERM if serve dies without stopping it (even by SIGKILL)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def gunicorn_argv(bind: str, port: int, workers: int) -> list[str]:
    """The command a site would run itself (docs/deploy.md shows the same)."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "aegis_site.asgi:application",
        "--worker-class",
        "uvicorn_worker.UvicornWorker",
        "--workers",
        str(workers),
        "--bind",
        f"{bind}:{port}",
        "--graceful-timeout",
        str(GRACEFUL_S),
        # Behind a proxy or with a browser that pauses between pages: 2 s (gunicorn's default)
        # closes idle connections just as the next request is sent on them.
        "--keep-alive",
        str(KEEPALIVE_S),
        # gunicorn 27's control socket sits in $HOME: two servers on one host would share it.
        "--no-control-socket",
        "--access-logfile",
        "-",
    ]


class Command(BaseCommand):
    help = "Migrate, set up roles and labs, then serve AEGIS on port 8088 (daphne, or gunicorn with --workers N)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8088)
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="web worker processes (default AEGIS_WEB_WORKERS, 1). Above 1: gunicorn + uvicorn "
            "workers, REDIS_URL required; twins still run in this process only.",
        )
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args, **options):
        workers = options["workers"] if options["workers"] is not None else settings.AEGIS_WEB_WORKERS
        if workers < 1:
            raise CommandError(f"--workers must be 1 or more, not {workers}")
        mode = dispatch_mode()
        if workers > 1 and not settings.REDIS_URL:
            # The in-memory channel layer lives in one process: a run's events, written by the
            # process that runs it, would never reach a websocket held by another worker.
            raise CommandError(
                f"--workers {workers} needs REDIS_URL (channels-redis): with the in-memory channel layer "
                "live progress written in one process never reaches a browser connected to another. "
                "Set REDIS_URL, or serve with --workers 1."
            )
        if workers > 1 and mode not in ("thread", "celery"):
            raise CommandError(
                f"AEGIS_RUN_DISPATCH={mode!r} is for tests; serve --workers {workers} runs with celery or the "
                "in-process worker"
            )
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        call_command("setup_roles", verbosity=0, stdout=self.stdout)
        for lab in lab_sync():
            self.stdout.write(f"lab {lab.name}: {', '.join(lab.routers)}")
        reaped = twin_reap_orphans()
        if reaped:
            self.stdout.write(f"removed {len(reaped)} twin(s) left by a process that died: {', '.join(reaped)}")
        if mode == "thread":
            if workers > 1:
                relay.relay_clear()  # runs relayed to a server that died: runs_recover fails them now
            failed = runs_recover()
            if failed:
                self.stdout.write(f"{failed} run(s) left by a previous server marked failed")
        if workers == 1:
            self.stdout.write(
                f"runs execute via: {mode}; open http://{options['bind']}:{options['port']}/preflight"
            )
            from daphne.cli import CommandLineInterface

            CommandLineInterface().run(
                ["-b", options["bind"], "-p", str(options["port"]), "aegis_site.asgi:application"]
            )
            return
        self._serve_workers(options["bind"], options["port"], workers, mode)

    def _serve_workers(self, bind: str, port: int, workers: int, mode: str) -> None:
        env = dict(os.environ)
        if mode == "thread":
            env["AEGIS_RUN_DISPATCH"] = "relay"  # the web workers never run a twin (preflight/worker.py)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        server = subprocess.Popen(
            gunicorn_argv(bind, port, workers), cwd=settings.BASE_DIR, env=env, preexec_fn=_die_with_parent
        )
        relay_thread = None
        if mode == "thread":
            relay_thread = threading.Thread(
                target=relay.relay_loop, args=(stop, worker.submit), name="aegis-run-relay", daemon=True
            )
            relay_thread.start()
        where = f"this process (pid {os.getpid()}) via the run relay" if mode == "thread" else mode
        self.stdout.write(
            f"{workers} web worker processes (gunicorn pid {server.pid}, uvicorn workers); runs execute in "
            f"{where}; open http://{bind}:{port}/preflight"
        )
        self.stdout.flush()
        try:
            while not stop.is_set() and server.poll() is None:
                stop.wait(0.5)
        finally:
            stop.set()
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)  # gunicorn: graceful stop of its workers
                try:
                    server.wait(timeout=GRACEFUL_S + 5)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            if relay_thread is not None:
                relay_thread.join(timeout=relay.POLL_S + 5)
            worker.shutdown(wait=True)  # runs in progress finish; the warm twins are torn down
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if server.returncode not in (0, -signal.SIGTERM):
            raise CommandError(f"the web server (gunicorn) exited with status {server.returncode}")
        self.stdout.write("stopped")
