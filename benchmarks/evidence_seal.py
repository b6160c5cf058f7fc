"""How long sealing, the ledger and verification take, and how big the files are.

    .venv/bin/python benchmarks/evidence_seal.py [--postgres URL] [--seals 20] [--ledger-size 5000]

Runs in a throwaway database (a temporary SQLite file, or with --postgres a database named
aegis_bench_evidence on that server, dropped at the end) and a temporary AEGIS_HOME, so a
site's real ledger is never touched. Prints one figure per line; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_DB = "aegis_bench_evidence"


def _pg_admin(url: str, sql: str) -> None:
    import psycopg

    server = url.rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--postgres", help="server URL, e.g. postgres://postgres@127.0.0.1:5432 (default: SQLite)")
    p.add_argument("--seals", type=int, default=20, help="how many run_seal calls to time")
    p.add_argument(
        "--ledger-size", type=int, default=5000, help="ledger size for the append and check figures"
    )
    a = p.parse_args()

    home = Path(tempfile.mkdtemp(prefix="aegis-bench-evidence-"))
    os.environ["AEGIS_HOME"] = str(home)
    os.environ["AEGIS_SITE_KEY_FILE"] = str(home / "keys" / "site.pem")
    os.environ["AEGIS_LOG_LEVEL"] = "ERROR"
    if a.postgres:
        url = a.postgres.rstrip("/") + "/" + BENCH_DB
        _pg_admin(url, f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        _pg_admin(url, f'CREATE DATABASE "{BENCH_DB}"')
        os.environ["DATABASE_URL"] = url
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{home / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        run(a, home)
    finally:
        from django.db import connections

        connections.close_all()
        if a.postgres:
            _pg_admin(url, f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        shutil.rmtree(home, ignore_errors=True)
    return 0


def run(a: argparse.Namespace, home: Path) -> None:
    from django.conf import settings
    from django.db import connection

    from evidence.core import merkle
    from evidence.core.bundle import ledger_leaf_data
    from evidence.core.checkpoint import checkpoint_sign
    from evidence.models import Checkpoint, LedgerEntry
    from evidence.services import ledger_append, ledger_check, run_seal, site_key
    from evidence.tests.conftest import LAB, result_fixture
    from evidence.verify_standalone import verify_bytes

    print(
        f"database: {connection.vendor}; load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)"
    )
    key = site_key()

    # --- run_seal on the bundled triangle lab (needs_approval fixture) ---------------------
    times, cpu = [], []
    outcome = None
    for n in range(a.seals):
        result = result_fixture("needs_approval" if n % 2 == 0 else "blocked")
        result["run_id"] = f"bench-{n}"
        t0, c0 = time.perf_counter(), time.process_time()
        outcome = run_seal(result, lab_dir=LAB, change_text=None, out_dir=home / "out" / str(n),
                           frameworks=["nist-800-53r5", "pci-dss-4.0.1", "nerc-cip-010-4"], operator="bench")  # fmt: skip
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    assert outcome is not None
    print(f"run_seal: {a.seals} seals, median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms wall; CPU of this process median {statistics.median(cpu) * 1000:.0f} ms "
          f"(statement + signature + ledger + PDF + files)")  # fmt: skip
    print(f"bundle.json: {outcome.bundle_path.stat().st_size / 1024:.1f} KiB; "
          f"report.pdf: {outcome.pdf_path.stat().st_size / 1024:.1f} KiB")  # fmt: skip

    # --- verification --------------------------------------------------------------------
    trusted = {key.keyid: key.public_key}
    for label, path in (("bundle.json", outcome.bundle_path), ("report.pdf", outcome.pdf_path)):
        data = path.read_bytes()
        t0 = time.perf_counter()
        for _ in range(20):
            checks = verify_bytes(data, trusted, origin=settings.AEGIS_LEDGER_ORIGIN)
        took = (time.perf_counter() - t0) / 20
        print(f"verify {label}: {took * 1000:.1f} ms, all checks hold: {all(c.ok for c in checks)}")

    # --- the ledger at size N: fill it directly (leaves + one signed checkpoint) -----------
    have = LedgerEntry.objects.count()
    leaves = [
        bytes.fromhex(h) for h in LedgerEntry.objects.order_by("index").values_list("leaf_hash", flat=True)
    ]
    rows = []
    for i in range(have, a.ledger_size):
        digest = "sha256:" + f"{i:064x}"
        leaf = merkle.leaf_hash(ledger_leaf_data("bench", digest))
        leaves.append(leaf)
        rows.append(LedgerEntry(index=i, kind="bench", payload_digest=digest, leaf_hash=leaf.hex()))
    LedgerEntry.objects.bulk_create(rows, batch_size=2000)
    root = merkle.root(leaves)
    Checkpoint.objects.create(tree_size=len(leaves), root_hash=root.hex(), keyid=key.keyid,
                              note=checkpoint_sign(settings.AEGIS_LEDGER_ORIGIN, len(leaves), root, key))  # fmt: skip
    times = []
    for i in range(10):
        t0 = time.perf_counter()
        ledger_append("bench", "sha256:" + f"{10**9 + i:064x}")
        times.append(time.perf_counter() - t0)
    print(f"ledger_append at {a.ledger_size} leaves: median {statistics.median(times) * 1000:.1f} ms "
          f"(loads every leaf hash, recomputes the root: O(n))")  # fmt: skip
    t0 = time.perf_counter()
    report = ledger_check()
    print(f"ledger_check over {report.size} leaves and {report.checkpoints} checkpoints: "
          f"{time.perf_counter() - t0:.2f} s, ok: {report.ok}")  # fmt: skip
    t0 = time.perf_counter()
    merkle.root(leaves)
    print(f"merkle root of {len(leaves)} leaves (pure Python): {(time.perf_counter() - t0) * 1000:.1f} ms")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
