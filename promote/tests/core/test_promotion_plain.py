"""Promotion pieces that need no device: candidates, baselines, records, read-back comparison."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from promote.core.gate import gate_evaluate
from promote.core.promotion import CandidateError, bundle_baselines, candidate_build, promotion_execute
from promote.core.record import OUTPUT_LIMIT, promotion_record, record_digest
from promote.core.verify import state_compare
from promote.tests.bundles import NOW, Approver, Site, result_doc

BASE = "hostname r1\n!\nrouter bgp 65001\n neighbor 10.0.12.1 remote-as 65002\nexit\n!\nend\n"


def test_candidate_appends_additive_changes():
    cand = candidate_build(BASE, "ip route 192.0.2.0/24 Null0\n")
    assert cand.startswith("hostname r1\n") and cand.endswith("!\nip route 192.0.2.0/24 Null0\n")


def test_candidate_refuses_removals_with_what_to_do():
    with pytest.raises(CandidateError, match="twin's post-change running config"):
        candidate_build(BASE, "router bgp 65001\n no neighbor 10.0.12.1 remote-as 65002\n")


def test_baselines_are_found_by_digest_among_the_bundle_lab_files():
    site = Site()
    bundle = site.seal(result_doc(configs={"r1": BASE}), configs={"r1": BASE})
    facts = gate_evaluate(
        bundle=bundle,
        site_keys=site.site_keys,
        log_keys=site.log_keys,
        approvals=[],
        approver_keys={},
        used_jtis=set(),
        now=NOW,
    ).facts
    assert bundle_baselines(facts) == {"r1": BASE}
    other = site.seal(result_doc(configs={"r1": BASE}), configs={"r1": BASE + "! edited\n"})
    facts = gate_evaluate(
        bundle=other,
        site_keys=site.site_keys,
        log_keys=site.log_keys,
        approvals=[],
        approver_keys={},
        used_jtis=set(),
        now=NOW,
    ).facts
    assert bundle_baselines(facts) == {}, "a file whose digest is not the node's config is never used"


def run(site, bundle, approvals, devices, **kw):
    alice = Approver("alice")
    return promotion_execute(
        actor="olivia",
        bundle=bundle,
        site_keys=site.site_keys,
        log_keys=site.log_keys,
        approvals=approvals,
        approver_keys={alice.key.keyid: alice.registered},
        used_jtis=set(),
        devices=devices,
        now=NOW,
        **kw,
    )


def test_changed_node_without_inventory_entry_is_refused_before_connecting():
    site = Site()
    bundle = site.seal(
        result_doc(verdict="ship_ready", risk="low", configs={"r1": BASE}), configs={"r1": BASE}
    )
    contacted = []
    out = run(site, bundle, [], {}, connect=lambda spec: contacted.append(spec) or None)
    assert out.outcome == "refused" and contacted == []
    assert any("r1: no device in the inventory" in r for r in out.record["reasons"])


def test_refusal_record_is_plain_json_with_every_gate():
    site = Site()
    bundle = site.seal(result_doc(verdict="blocked", configs={"r1": BASE}), configs={"r1": BASE})
    out = run(site, bundle, [], {})
    rec = json.loads(json.dumps(out.record))
    assert rec["format"] == "aegis.promotion.record/v1" and rec["outcome"] == "refused"
    assert rec["bundle"]["digest"] == bundle["digest"] and rec["actor"] == "olivia"
    assert [c["gate"] for c in rec["gate"]["checks"]] == ["G1", "G2", "G3", "G4", "drift"]
    assert any(r.startswith("G2: verdict is 'blocked'") for r in rec["reasons"])
    assert out.record_digest == record_digest(out.record) and out.record_digest.startswith("sha256:")


def test_record_clips_runaway_device_output():
    site = Site()
    bundle = site.seal(result_doc(configs={"r1": BASE}), configs={"r1": BASE})
    gate = gate_evaluate(
        bundle=bundle,
        site_keys=site.site_keys,
        log_keys=site.log_keys,
        approvals=[],
        approver_keys={},
        used_jtis=set(),
        now=NOW,
    )
    rec = promotion_record(
        actor="a",
        at=datetime.now(UTC),
        bundle_digest=None,
        run_id=None,
        gate=gate,
        outcome="dry_run",
        devices={"r1": {"dry_run": {"output": "x" * (OUTPUT_LIMIT + 10)}}},
    )
    assert len(rec["devices"]["r1"]["dry_run"]["output"]) < OUTPUT_LIMIT + 100
    with pytest.raises(ValueError, match="outcome"):
        promotion_record(
            actor="a", at=NOW, bundle_digest=None, run_id=None, gate=gate, outcome="maybe", devices={}
        )


PREDICTED = {
    "routes": {
        "192.0.2.0/24": {"protocol": "bgp", "distance": 20, "metric": 0, "nexthops": ["10.0.12.0@eth1"]},
        "fe80::/64": {"protocol": "connected", "distance": 0, "metric": 0, "nexthops": ["@eth1"]},
    },
    "bgp": {"10.0.12.0": {"state": "Established", "remote_as": 65001, "pfx_rcd": 2}},
}


def test_state_compare_equal_ignores_counters_and_link_local():
    observed = json.loads(json.dumps(PREDICTED))
    observed["bgp"]["10.0.12.0"]["pfx_rcd"] = 1  # counters lag; routes are compared directly
    del observed["routes"]["fe80::/64"]
    assert state_compare("r2", PREDICTED, observed) == []


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda o: o["routes"].pop("192.0.2.0/24"), "predicted by the twin is missing"),
        (lambda o: o["routes"].update({"10.9.0.0/16": {"protocol": "static"}}), "twin did not predict it"),
        (lambda o: o["routes"]["192.0.2.0/24"].update(nexthops=["10.0.13.0@eth2"]), "differs"),
        (lambda o: o["bgp"]["10.0.12.0"].update(state="Active"), "BGP peer 10.0.12.0"),
    ],
)
def test_state_compare_reports_each_difference(edit, fragment):
    observed = json.loads(json.dumps(PREDICTED))
    edit(observed)
    problems = state_compare("r2", PREDICTED, observed)
    assert len(problems) == 1 and fragment in problems[0] and problems[0].startswith("r2: ")


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_unreachable_device_gives_a_refusal_record_not_a_traceback():
    from promote.connectors import DeviceSpec

    site = Site()
    bundle = site.seal(
        result_doc(verdict="ship_ready", risk="low", configs={"r1": BASE}), configs={"r1": BASE}
    )
    spec = DeviceSpec(
        name="r1", host="127.0.0.1", port=_closed_port(), username="aegis", key_file="/nonexistent", timeout=3
    )
    out = run(site, bundle, [], {"r1": spec})
    assert out.outcome == "refused"
    assert any("drift check could not read the device" in r and "r1" in r for r in out.record["reasons"])


class _Exploding:
    """A connector whose device answers nonsense: an error no connector anticipated."""

    transcript: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def running_config(self):
        raise RuntimeError("device sent garbage")


def test_unexpected_errors_still_end_in_a_record():
    site = Site()
    bundle = site.seal(
        result_doc(verdict="ship_ready", risk="low", configs={"r1": BASE}), configs={"r1": BASE}
    )
    from promote.connectors import DeviceSpec

    out = run(
        site, bundle, [], {"r1": DeviceSpec(name="r1", host="127.0.0.1")}, connect=lambda spec: _Exploding()
    )
    assert out.outcome == "failed"
    assert out.record["reasons"] == ["unexpected error during promotion: RuntimeError: device sent garbage"]
