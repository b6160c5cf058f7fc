"""The gate G1–G4 + drift, on real sealed bundles made with the evidence core."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from evidence.core.keys import SigningKey
from promote.core.approvals import approver_keyring
from promote.core.drift import drift_check
from promote.core.gate import gate_evaluate, gate_with_drift
from promote.tests.bundles import NOW, Approver, Site, result_doc, tampered

ALICE, BOB, OLIVIA = Approver("alice"), Approver("bob"), Approver("olivia")
RING = approver_keyring([ALICE.registered, BOB.registered, OLIVIA.registered])


@pytest.fixture
def site():
    s = Site()
    for i in range(5):  # a ledger with other entries before ours
        s.seal(result_doc(run_id=f"earlier-{i}"))
    return s


def evaluate(site, bundle, approvals=(), **kw):
    args = dict(
        bundle=bundle,
        site_keys=site.site_keys,
        log_keys=site.log_keys,
        approvals=list(approvals),
        approver_keys=RING,
        used_jtis=set(),
        now=NOW,
        ledger_origin="aegis.test/ledger",
    )
    args.update(kw)
    return gate_evaluate(**args)


def failing(result):
    return {c.gate for c in result.checks if not c.passed}


def test_ship_ready_bundle_passes_g1_to_g4_in_dry_run(site):
    result = evaluate(site, site.seal(result_doc(verdict="ship_ready", risk="low")))
    assert failing(result) == {"drift"}, result.reasons
    assert result.devices_allowed and result.mode == "dry-run"
    assert result.check("G1").detail["ledger"] == "included"
    assert result.facts.operator == "olivia"


# ---- G1 ---------------------------------------------------------------------------------------


def _payload_edit(b):
    st = json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))
    st["predicate"]["verdict"] = "ship_ready"
    b["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()


def _payload_edit_and_digest(b):
    _payload_edit(b)
    import hashlib

    b["digest"] = "sha256:" + hashlib.sha256(base64.b64decode(b["dsseEnvelope"]["payload"])).hexdigest()


TAMPER = [
    ("payload edited", _payload_edit, "bundle was altered"),
    ("payload edited, digest recomputed", _payload_edit_and_digest, "signature does not verify"),
    ("digest swapped", lambda b: b.update(digest="sha256:" + "0" * 64), "bundle was altered"),
    (
        "signature replaced",
        lambda b: b["dsseEnvelope"]["signatures"][0].update(
            sig=base64.b64encode(SigningKey.generate().sign(b"x")).decode()
        ),
        "signature does not verify",
    ),
    ("no ledger proof", lambda b: b["ledger"].pop("tlog_proof"), "never entered in the ledger"),
    (
        "ledger index moved",
        lambda b: b["ledger"].update(tlog_proof=b["ledger"]["tlog_proof"].replace("index 5", "index 4")),
        "inclusion proof fails",
    ),
    ("wrong format", lambda b: b.update(format="something/v0"), "not an AEGIS evidence bundle"),
]


@pytest.mark.parametrize(("mutate", "match"), [t[1:] for t in TAMPER], ids=[t[0] for t in TAMPER])
def test_tampered_bundle_refused_at_g1(site, mutate, match):
    bundle = site.seal(result_doc(verdict="ship_ready", risk="low"))
    result = evaluate(site, tampered(bundle, mutate))
    g1 = result.check("G1")
    assert not g1.passed and any(match in r for r in g1.reasons), g1.reasons
    assert not result.devices_allowed
    assert not result.check("G2").passed and not result.check("G3").passed


def test_bundle_signed_by_a_key_outside_the_site_keyring_is_refused(site):
    bundle = site.seal(result_doc(verdict="ship_ready"))
    other = Site()
    result = evaluate(site, bundle, site_keys=other.site_keys)
    assert "G1" in failing(result)


def test_inclusion_must_be_against_the_latest_checkpoint(site):
    bundle = site.seal(result_doc(verdict="ship_ready"))
    site.seal(result_doc(run_id="later"))  # the ledger grew; the bundle's proof is now old
    stale = evaluate(site, bundle, latest_checkpoint=site.checkpoint())
    assert any("latest" in r for r in stale.check("G1").reasons)
    fresh = evaluate(site, bundle, latest_checkpoint=site.checkpoint(), tlog_proof=site.proof(5))
    assert fresh.check("G1").passed, fresh.check("G1").reasons


def test_checkpoint_signed_by_unknown_log_key_is_refused(site):
    bundle = site.seal(result_doc(verdict="ship_ready"))
    result = evaluate(site, bundle, log_keys=[SigningKey.generate().public_key])
    assert any("ledger proof" in r for r in result.check("G1").reasons)


# ---- G2 ---------------------------------------------------------------------------------------

# (verdict, risk, tier, approvers, G2 passes, reason fragment)
G2_TABLE = [
    ("ship_ready", "low", "real", [], True, ""),
    ("needs_approval", "medium", "real", [], False, "needs 1 distinct approval(s), has 0"),
    ("needs_approval", "medium", "real", [ALICE], True, ""),
    ("needs_approval", "high", "real", [ALICE], False, "needs 2 distinct approval(s), has 1"),
    ("needs_approval", "high", "real", [ALICE, BOB], True, ""),
    ("blocked", "low", "real", [ALICE], False, "never promotable"),
    ("ship_ready", "low", "simulated", [], False, "simulated"),
    ("needs_approval", "medium", "simulated", [ALICE], False, "simulated"),
]


@pytest.mark.parametrize(("verdict", "risk", "tier", "approvers", "passes", "fragment"), G2_TABLE)
def test_g2_verdict_table(site, verdict, risk, tier, approvers, passes, fragment):
    bundle = site.seal(result_doc(verdict=verdict, risk=risk, tier=tier))
    result = evaluate(site, bundle, [a.approve(bundle) for a in approvers])
    g2 = result.check("G2")
    assert g2.passed is passes, g2.reasons
    if fragment:
        assert any(fragment in r for r in g2.reasons), g2.reasons


def test_g2_high_risk_setting_is_honoured(site):
    bundle = site.seal(result_doc(verdict="needs_approval", risk="high"))
    result = evaluate(site, bundle, [ALICE.approve(bundle)], high_risk_approvers=1)
    assert result.check("G2").passed


def test_a_rejection_is_final_even_with_enough_approvals(site):
    bundle = site.seal(result_doc(verdict="needs_approval", risk="medium"))
    carol = Approver("carol")
    ring = approver_keyring([ALICE.registered, carol.registered])
    result = evaluate(
        site, bundle, [ALICE.approve(bundle), carol.approve(bundle, decision="reject")], approver_keys=ring
    )
    assert not result.check("G2").passed
    assert any("rejected by carol" in r for r in result.check("G2").reasons)


# ---- G3 ---------------------------------------------------------------------------------------


def test_g3_accepts_a_valid_approval(site):
    bundle = site.seal(result_doc())
    result = evaluate(site, bundle, [ALICE.approve(bundle)])
    assert result.check("G3").passed and result.check("G2").passed
    assert [a.approver for a in result.approvals] == ["alice"]


def test_g3_refuses_replayed_token(site):
    bundle = site.seal(result_doc())
    token = ALICE.approve(bundle, jti="j-1")
    result = evaluate(site, bundle, [token], used_jtis={"j-1"})
    assert any("already used (replay refused)" in r for r in result.check("G3").reasons)
    assert not result.check("G2").passed, "a refused token does not count towards G2"
    twice = evaluate(site, bundle, [token, token])
    assert any("replay" in r for r in twice.check("G3").reasons)


def test_g3_refuses_expired_token(site):
    bundle = site.seal(result_doc())
    token = ALICE.approve(bundle, at=NOW - timedelta(hours=2), ttl_s=3600)
    result = evaluate(site, bundle, [token])
    assert any("expired at 2026-11-25T19:00:00Z" in r for r in result.check("G3").reasons)
    # the same token was fine while it lived
    assert evaluate(site, bundle, [token], now=NOW - timedelta(minutes=90)).check("G3").passed


def test_g3_refuses_token_for_another_bundle(site):
    first = site.seal(result_doc(run_id="run-1"))
    rerun = site.seal(result_doc(run_id="run-2"))
    result = evaluate(site, rerun, [ALICE.approve(first)])
    assert any(
        "not this bundle" in r and "re-run needs a new approval" in r for r in result.check("G3").reasons
    )


def test_g3_refuses_self_approval(site):
    bundle = site.seal(result_doc(), operator="olivia")
    result = evaluate(site, bundle, [OLIVIA.approve(bundle)])
    assert any("olivia is the operator" in r for r in result.check("G3").reasons)
    assert not result.check("G2").passed


def test_g3_refuses_unregistered_signer_and_wrong_role_and_future_tokens(site):
    bundle = site.seal(result_doc())
    stranger = Approver("stranger")
    assert any(
        "does not verify" in r for r in evaluate(site, bundle, [stranger.approve(bundle)]).check("G3").reasons
    )
    assert any(
        "role 'operator'" in r
        for r in evaluate(site, bundle, [ALICE.approve(bundle, role="operator")]).check("G3").reasons
    )
    future = ALICE.approve(bundle, at=NOW + timedelta(hours=1))
    assert any("issued in the future" in r for r in evaluate(site, bundle, [future]).check("G3").reasons)


# ---- G4 and drift -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("live_requested", "site_allows_live", "passes", "mode"),
    [
        (False, False, True, "dry-run"),
        (False, True, True, "dry-run"),
        (True, False, False, "dry-run"),
        (True, True, True, "live"),
    ],
)
def test_g4_live_needs_both_opt_ins(site, live_requested, site_allows_live, passes, mode):
    bundle = site.seal(result_doc(verdict="ship_ready", risk="low"))
    result = evaluate(site, bundle, live_requested=live_requested, site_allows_live=site_allows_live)
    assert result.check("G4").passed is passes
    assert result.mode == mode
    if not passes:
        assert any("AEGIS_ALLOW_LIVE_PROMOTION" in r for r in result.check("G4").reasons)


def test_drift_gate(site):
    bundle = site.seal(result_doc(verdict="ship_ready", risk="low"))
    result = evaluate(site, bundle)
    assert not result.passed and "not checked yet" in result.check("drift").reasons[0]
    same = gate_with_drift(result, [drift_check("r1", "hostname r1\n", baseline_text="hostname r1\n")])
    assert same.passed
    drifted = gate_with_drift(result, [drift_check("r1", "hostname r2\n", baseline_text="hostname r1\n")])
    assert not drifted.passed and "stale" in drifted.reasons[0]
    assert gate_with_drift(result, []).check("drift").reasons == ["no device to check"]


def test_gate_result_is_plain_json(site):
    bundle = site.seal(result_doc())
    result = evaluate(site, bundle, [ALICE.approve(bundle)])
    doc = json.loads(json.dumps(result.as_dict()))
    assert [c["gate"] for c in doc["checks"]] == ["G1", "G2", "G3", "G4", "drift"]
    assert doc["approvals"][0]["approver"] == "alice"
