"""`manage.py twin_pool serve | status`: hold warm twins for `manage.py preflight --warm` (root).

`serve` runs in the foreground until SIGTERM/SIGINT, listening on AEGIS_TWIN_POOL_SOCKET; it
keeps up to `--budget-mb` (AEGIS_WARM_TWINS_MB) of converged baseline twins, and tears them all
down when it stops (the reaper does it if the holder is killed). `status` prints what a running
holder holds (`--json` for scripts); exit 1 when none answers. See preflight/pool_holder.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from preflight.pool_client import HolderUnavailable, holder_status
from preflight.pool_holder import PoolHolder
from twin.pool import pool_status_prune, twin_pool_close, twin_pool_get
from twin.reap import twin_reap_orphans

STOP_WAIT_S = 300.0  # runs in progress get this long to finish before their twins are torn down anyway


class Command(BaseCommand):
    help = ("Hold warm baseline twins for `manage.py preflight --warm` across CLI invocations "
            "(serve: root, foreground), or show what a running holder holds (status).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["serve", "status"])
        parser.add_argument("--socket", default=str(settings.AEGIS_TWIN_POOL_SOCKET),
                            help="unix socket (default AEGIS_TWIN_POOL_SOCKET)")
        parser.add_argument("--budget-mb", type=int, default=settings.AEGIS_WARM_TWINS_MB,
                            help="FRR memory the holder may keep in warm twins (default AEGIS_WARM_TWINS_MB)")
        parser.add_argument("--json", action="store_true", help="status: print one JSON object")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["action"] == "status":
            self._status(opts)
        else:
            self._serve(opts)

    def _status(self, opts: dict[str, Any]) -> None:
        try:
            st = holder_status(opts["socket"])
        except HolderUnavailable as exc:
            if opts["json"]:
                self.stdout.write(json.dumps({"running": False, "error": str(exc)}))
            else:
                self.stderr.write(str(exc))
            sys.exit(1)
        if opts["json"]:
            self.stdout.write(json.dumps({"running": True, **st}))
            return
        self.stdout.write(f"twin_pool holder pid {st['pid']} since {st['started']}: {len(st['twins'])} warm twin(s), "
                          f"{st['memory_mb']:g} of {st['budget_mb']:g} MB")
        for t in st["twins"]:
            self.stdout.write(f"  {t['lab']}: twin {t['twin_id']}, {t['routers']} routers, {t['memory_mb']:g} MB, "
                              f"{'in use' if t['leased'] else 'idle'}, {t['uses']} run(s), last used {t['last_used']}, "
                              f"baseline {t['baseline_digest'][:19]}…")

    def _serve(self, opts: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if os.geteuid() != 0:
            raise CommandError("twin_pool serve needs root: its twins are FRR in network namespaces")
        if opts["budget_mb"] <= 0:
            raise CommandError("--budget-mb must be positive (AEGIS_WARM_TWINS_MB=0 turns warm twins off)")
        twin_reap_orphans()  # twins of a holder (or any AEGIS process) that died
        pool_status_prune(settings.AEGIS_WARM_STATUS_DIR)  # and the status files they could not remove
        pool = twin_pool_get(opts["budget_mb"], settings.AEGIS_WARM_STATUS_DIR, "twin_pool")
        assert pool is not None
        holder = PoolHolder(opts["socket"], pool)
        try:
            holder.bind()
        except OSError as exc:
            twin_pool_close()
            raise CommandError(f"cannot listen on {opts['socket']}: {exc}") from None

        stops = []

        def stop(signum: int, _frame: Any) -> None:
            stops.append(signum)
            if len(stops) > 1:  # a second signal: do not wait for runs in progress
                threading.Thread(target=twin_pool_close, daemon=True).start()
            holder.stop()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, stop)
        # The first line is read by scripts and tests to know the holder is ready.
        self.stdout.write(f"twin_pool holder pid {os.getpid()} listening on {opts['socket']} "
                          f"(budget {opts['budget_mb']} MB)")
        self.stdout.flush()
        try:
            holder.serve_forever()
            left = holder.wait_runs(STOP_WAIT_S)
            if left:
                self.stderr.write(f"{left} run(s) still running after {STOP_WAIT_S:g} s; tearing their twins down")
        finally:
            holder.close()
            held = len(pool.holdings())
            twin_pool_close()
        self.stdout.write(f"twin_pool holder stopped; {held} warm twin(s) torn down")
