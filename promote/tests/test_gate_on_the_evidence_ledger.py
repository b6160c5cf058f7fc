"""G1 on bundles sealed by the evidence app itself (run_seal, the PostgreSQL ledger).

The gate's core tests seal in memory with the evidence core; this checks that G1 accepts
exactly what the real sealing service writes (bundle.json bytes, ledger rows, checkpoints)
and refuses it once altered, and that a proof must be refreshed when the ledger grows.
"""

from __future__ import annotations

import json

import pytest

from evidence.core.checkpoint import tlog_proof_format
from evidence.core.merkle import inclusion_proof
from evidence.models import Checkpoint, LedgerEntry
from evidence.services import run_seal, trusted_keys
from promote.core.gate import gate_evaluate
from promote.tests.bundles import NOW, result_doc

pytestmark = pytest.mark.django_db
ORIGIN = "aegis.test/promote-ledger"


@pytest.fixture
def home(settings, tmp_path):
    settings.AEGIS_HOME = tmp_path / "home"
    settings.AEGIS_SITE_KEY_FILE = tmp_path / "home" / "keys" / "site_ed25519.pem"
    settings.AEGIS_LEDGER_ORIGIN = ORIGIN
    return tmp_path


def seal(home, run_id):
    result = result_doc(verdict="ship_ready", risk="low", run_id=run_id)
    out = run_seal(
        result, lab_dir=None, change_text=None, out_dir=home / run_id, frameworks=[], operator="olivia"
    )
    return json.loads(out.bundle_path.read_bytes()), out


def fresh_proof(index):
    """What the shell passes as tlog_proof: inclusion under the latest checkpoint, from the rows."""
    leaves = [
        bytes.fromhex(h) for h in LedgerEntry.objects.order_by("index").values_list("leaf_hash", flat=True)
    ]
    latest = Checkpoint.objects.order_by("-tree_size").first()
    return tlog_proof_format(index, inclusion_proof(leaves, index), latest.note), latest.note


def g1(bundle, **kw):
    keys = trusted_keys()
    return gate_evaluate(
        bundle=bundle,
        site_keys=keys,
        log_keys=list(keys.values()),
        approvals=[],
        approver_keys={},
        used_jtis=set(),
        now=NOW,
        ledger_origin=ORIGIN,
        **kw,
    ).check("G1")


def test_g1_accepts_a_bundle_sealed_by_run_seal_and_refuses_it_altered(home):
    bundle, out = seal(home, "run-a")
    check = g1(bundle)
    assert check.passed, check.reasons
    assert check.detail["ledger_index"] == out.ledger_index
    # one base64 character of the signed payload changed, as an editor of bundle.json would
    payload = bundle["dsseEnvelope"]["payload"]
    k = len(payload) // 2
    edited = payload[:k] + ("A" if payload[k] != "A" else "B") + payload[k + 1 :]
    altered = dict(bundle, dsseEnvelope=dict(bundle["dsseEnvelope"], payload=edited))
    reasons = g1(altered).reasons
    assert any("bundle was altered" in r for r in reasons) or any("unreadable" in r for r in reasons), reasons
    flipped = dict(bundle, digest=bundle["digest"][:-1] + ("0" if bundle["digest"][-1] != "0" else "1"))
    assert any("bundle was altered" in r for r in g1(flipped).reasons)


def test_g1_wants_a_fresh_proof_once_the_ledger_has_grown(home):
    bundle, out = seal(home, "run-b")
    seal(home, "run-c")  # the ledger grew after run-b was sealed
    _, latest = fresh_proof(out.ledger_index)
    stale = g1(bundle, latest_checkpoint=latest)
    assert not stale.passed and any("latest checkpoint" in r for r in stale.reasons)
    proof, latest = fresh_proof(out.ledger_index)
    assert g1(bundle, latest_checkpoint=latest, tlog_proof=proof).passed
