"""The ledger on the real database: append, proofs, the append-only trigger, concurrency, damage."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connection, transaction

from evidence.core import merkle
from evidence.core.checkpoint import checkpoint_verify, tlog_proof_parse
from evidence.models import Checkpoint, LedgerEntry
from evidence.services import LedgerError, ledger_append, ledger_check, ledger_consistency, site_key

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the append-only trigger exists on PostgreSQL only (DATABASE_URL)",
)


def digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


@pytest.mark.django_db
def test_appends_get_consecutive_indices_and_each_proof_verifies(evidence_home):
    key = site_key()
    appended = [ledger_append("approval", digest(n), ref=f"run-{n}") for n in range(6)]
    assert [a.index for a in appended] == list(range(6))
    for a in appended:
        index, proof, note = tlog_proof_parse(a.tlog_proof())
        cp = checkpoint_verify(note, [key.public_key], origin=evidence_home and "aegis.test/ledger")
        assert (index, cp.size) == (a.index, a.index + 1)
        assert merkle.verify_inclusion(bytes.fromhex(a.leaf_hash), index, cp.size, proof, cp.root_hash)
    assert ledger_check().ok


@pytest.mark.django_db
def test_consistency_proof_between_two_sizes_verifies(evidence_home):
    for n in range(7):
        ledger_append("bundle", digest(n))
    c = ledger_consistency(3)
    assert merkle.verify_consistency(
        3,
        7,
        bytes.fromhex(c["old_root"]),
        bytes.fromhex(c["new_root"]),
        [bytes.fromhex(h) for h in c["proof"]],
    )
    assert c["old_root"] == Checkpoint.objects.get(tree_size=3).root_hash
    with pytest.raises(ValueError, match="sizes must satisfy"):
        ledger_consistency(8)


@pytest.mark.django_db
def test_bad_arguments_are_refused(evidence_home):
    with pytest.raises(ValueError, match="sha256"):
        ledger_append("bundle", "md5:0")
    assert LedgerEntry.objects.count() == 0


@postgres_only
@pytest.mark.django_db
@pytest.mark.parametrize("sql", [
    "UPDATE evidence_ledgerentry SET payload_digest = 'sha256:00' WHERE index = 0",
    "DELETE FROM evidence_ledgerentry WHERE index = 0",
    "UPDATE evidence_checkpoint SET root_hash = '00' WHERE tree_size = 1",
    "DELETE FROM evidence_checkpoint",
])  # fmt: skip
def test_postgresql_refuses_update_and_delete_on_ledger_tables(evidence_home, sql):
    ledger_append("bundle", digest(1))
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql)
    assert LedgerEntry.objects.get(index=0).payload_digest == digest(1)
    assert Checkpoint.objects.count() == 1


@postgres_only
@pytest.mark.django_db
def test_the_orm_cannot_delete_either(evidence_home):
    ledger_append("bundle", digest(1))
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.all().delete()
    assert LedgerEntry.objects.count() == 1


def rewrite(sql: str, params: list) -> None:
    """What someone with the database owner's rights can do: on PostgreSQL, switch the
    append-only trigger off around the statement; SQLite has no trigger to switch off."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE evidence_ledgerentry DISABLE TRIGGER evidence_ledgerentry_append_only")
        cur.execute(sql, params)
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE evidence_ledgerentry ENABLE TRIGGER evidence_ledgerentry_append_only")


@pytest.mark.django_db
def test_a_rewritten_ledger_is_detected_and_further_appends_are_refused(evidence_home):
    for n in range(4):
        ledger_append("bundle", digest(n))
    rewrite('UPDATE evidence_ledgerentry SET payload_digest = %s WHERE "index" = 1', [digest(99)])
    report = ledger_check()
    assert not report.ok
    assert any("leaf 1: stored hash does not match" in p for p in report.problems)
    # Also rewrite the stored leaf hash: now the checkpoints no longer match the leaves.
    forged = merkle.leaf_hash(b"aegis-ledger/v1\nbundle\n" + digest(99).encode() + b"\n").hex()
    rewrite('UPDATE evidence_ledgerentry SET leaf_hash = %s WHERE "index" = 1', [forged])
    report = ledger_check()
    assert any("signed root differs" in p for p in report.problems)
    with pytest.raises(LedgerError, match="the log was altered"):
        ledger_append("bundle", digest(5))


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_never_share_an_index(evidence_home, monkeypatch):
    import contextlib

    from django.db import connections

    from evidence import services

    # Only the database lock may keep the threads apart, as between two worker processes.
    monkeypatch.setattr(services, "_process_lock", contextlib.nullcontext())
    site_key()  # create the key once, before the threads race for it
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(w: int) -> None:
        try:
            barrier.wait()
            for n in range(5):
                ledger_append("bundle", digest(w * 100 + n))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(LedgerEntry.objects.values_list("index", flat=True)) == list(range(20))
    assert LedgerEntry.objects.values("payload_digest").distinct().count() == 20
    report = ledger_check()
    assert report.ok and report.checkpoints == 20, report.problems
