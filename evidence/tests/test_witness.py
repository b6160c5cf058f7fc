"""An independent witness cosigns the ledger only while it grows append-only."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from evidence.core import merkle
from evidence.core.bundle import ledger_leaf_data
from evidence.core.checkpoint import checkpoint_sign, checkpoint_verify, cosignature_verify
from evidence.core.keys import SigningKey, signing_key_load_or_create
from evidence.models import Checkpoint, Cosignature, LedgerEntry
from evidence.services import LedgerError, ledger_append, ledger_check, ledger_witness, site_key
from evidence.tests.test_ledger import digest

pytestmark = pytest.mark.django_db
NAME = "audit.test/witness"


@pytest.fixture
def witness():
    return SigningKey.generate()


def test_the_witness_cosigns_each_new_head_and_ledger_check_verifies_it(evidence_home, witness, tmp_path):
    state = tmp_path / "witness-state.json"
    ledger_append("bundle", digest(1))
    first = ledger_witness(witness, NAME, state)
    assert first.tree_size == 1 and json.loads(state.read_text())["size"] == 1
    for n in range(2, 6):
        ledger_append("bundle", digest(n))
    second = ledger_witness(witness, NAME, state)
    assert second.tree_size == 5
    assert ledger_witness(witness, NAME, state).pk == second.pk  # same head: nothing new to sign
    report = ledger_check()
    assert report.ok, report.problems
    assert "cosignatures: 2 witness cosignatures checked" in report.lines
    note = Checkpoint.objects.get(tree_size=5).note
    assert cosignature_verify(note, second.line, NAME, witness.public_key) == second.witnessed_at
    assert checkpoint_verify(note + second.line, [site_key().public_key]).size == 5


def owner_sql(table: str, sql: str, params: list | None = None) -> None:
    """SQL as the database owner would run it: around PostgreSQL's append-only trigger."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
        cur.execute(sql, params or [])
        if connection.vendor == "postgresql":
            cur.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")


def test_a_rewritten_and_re_signed_log_is_caught_by_the_witness(evidence_home, witness, tmp_path):
    state = tmp_path / "witness-state.json"
    for n in range(3):
        ledger_append("bundle", digest(n))
    ledger_witness(witness, NAME, state)
    # The operators, with the site key and the database owner's rights, rewrite leaf 1 and
    # re-sign every checkpoint so that the log agrees with itself again.
    forged = merkle.leaf_hash(ledger_leaf_data("bundle", digest(99))).hex()
    owner_sql("evidence_ledgerentry", 'UPDATE evidence_ledgerentry SET payload_digest = %s, leaf_hash = %s '
              'WHERE "index" = 1', [digest(99), forged])  # fmt: skip
    owner_sql("evidence_checkpoint", "DELETE FROM evidence_checkpoint")
    leaves = [
        bytes.fromhex(h) for h in LedgerEntry.objects.order_by("index").values_list("leaf_hash", flat=True)
    ]
    key = site_key()
    for size in range(1, 4):
        root = merkle.root(leaves[:size])
        Checkpoint.objects.create(tree_size=size, root_hash=root.hex(), keyid=key.keyid,
                                  note=checkpoint_sign("aegis.test/ledger", size, root, key))  # fmt: skip
    ledger_append("bundle", digest(3))
    # The witness's stored cosignature no longer fits the re-signed checkpoint: ledger_check sees it.
    assert any("cosignature by audit.test/witness of size 3" in p for p in ledger_check().problems)
    # Delete the cosignatures too, and everything the operators control agrees with itself...
    owner_sql("evidence_cosignature", "DELETE FROM evidence_cosignature")
    assert ledger_check().ok
    # ...but the witness remembers the root it saw, and refuses to cosign the rewritten log.
    with pytest.raises(LedgerError, match="NOT CONSISTENT"):
        ledger_witness(witness, NAME, state)
    assert Cosignature.objects.count() == 0


def test_a_cosignature_by_an_unregistered_witness_is_a_ledger_problem(evidence_home, witness, tmp_path):
    ledger_append("bundle", digest(1))
    row = ledger_witness(witness, NAME, tmp_path / "s.json")
    for pem in (evidence_home / "keys" / "witnesses").glob("*.pem"):
        pem.unlink()
    report = ledger_check()
    assert any(f"witness key {row.witness_keyid} is not in" in p for p in report.problems)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only trigger exists on PostgreSQL only"
)
def test_cosignatures_cannot_be_deleted_on_postgresql(evidence_home, witness, tmp_path):
    ledger_append("bundle", digest(1))
    ledger_witness(witness, NAME, tmp_path / "s.json")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Cosignature.objects.all().delete()


def test_the_command_cosigns_and_ledger_head_carries_the_cosignature(evidence_home, tmp_path):
    ledger_append("bundle", digest(1))
    key_file = tmp_path / "witness" / "key.pem"
    signing_key_load_or_create(key_file)
    out = io.StringIO()
    call_command("ledger_witness", "--key", str(key_file), "--name", NAME, "--state", str(tmp_path / "w.json"),
                 stdout=out)  # fmt: skip
    assert "cosigned checkpoint of size 1" in out.getvalue()
    head = io.StringIO()
    call_command("ledger_head", stdout=head)
    assert head.getvalue().count("\u2014 ") == 2  # the log's signature and the witness's
    # A witness that saw another root at the same size refuses: split view.
    (tmp_path / "w.json").write_text(
        json.dumps({"origin": "aegis.test/ledger", "size": 1, "root": "00" * 32})
    )
    refused = io.StringIO()
    with pytest.raises(SystemExit) as stop:
        call_command("ledger_witness", "--key", str(key_file), "--name", NAME, "--state", str(tmp_path / "w.json"),
                     stdout=refused)  # fmt: skip
    assert stop.value.code == 1 and "REFUSED: NOT CONSISTENT" in refused.getvalue()
