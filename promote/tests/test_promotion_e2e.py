"""End to end on real parts: a real twin run sealed by the evidence app, a signed approval made
by `approval_decide`, and `manage.py promote` against a real "production" FRR network reached
over SSH (promote/tests/prodnet.py).

One test, in order, on one production network: dry-run passes and changes nothing; live
without the site setting is refused (G4); a tampered bundle is refused (G1); an inventory
missing a device is an input error (exit 2, no attempt); live with the setting applies; the
same approval presented again is a replay (G3). Every attempt left a PromotionRecord and a
ledger leaf of kind "promotion".
"""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from django.core.management import call_command

from evidence.models import Bundle, LedgerEntry
from evidence.services import run_seal
from preflight.models import ChangeRequest, Lab, PreflightRun
from preflight.tests.web.fixtures import *  # noqa: F401,F403 - personas, per-test AEGIS_HOME
from promote.models import PromotionRecord, SignedApproval, UsedApprovalToken
from promote.services import approval_decide
from promote.tests.connectors.test_promotion_prod import CHANGE, CONFIGS, LINKS, SettledNetnsBackend
from promote.tests.prodnet import ProdNetwork, prerequisites_missing, prodnet_reap

pytestmark = [
    pytest.mark.twin,
    pytest.mark.django_db,
    pytest.mark.skipif(
        bool(prerequisites_missing()), reason=f"production network: {prerequisites_missing()}"
    ),
]

# The production lab with r1 marked as the core router, so the change needs approval.
CLAB = """name: prod
topology:
  nodes:
    r1: {kind: linux, labels: {aegis.criticality: high},
         binds: ["r1/frr.conf:/etc/frr/frr.conf", "r1/daemons:/etc/frr/daemons"]}
    r2: {kind: linux, binds: ["r2/frr.conf:/etc/frr/frr.conf", "r2/daemons:/etc/frr/daemons"]}
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
"""


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    from preflight.core.pipeline import run_preflight

    lab = tmp_path_factory.mktemp("prodlab")
    (lab / "prod.clab.yml").write_text(CLAB)
    for name, conf in CONFIGS.items():
        (lab / name).mkdir()
        (lab / name / "frr.conf").write_text(conf)
        (lab / name / "daemons").write_text("bgpd=yes\n")
    result = run_preflight(lab, CHANGE, backend=SettledNetnsBackend(), converge_timeout=60)
    assert result["verdict"] == "needs_approval", (result["verdict"], result["reasons"])
    return lab, result


@pytest.fixture
def prod(request):
    prodnet_reap()
    net = ProdNetwork.start(CONFIGS, LINKS)
    request.addfinalizer(net.teardown)
    net.wait_established(peers=1)
    return net


def promote(capsys, *args):
    """manage.py promote …, in this process (the SSH forwarders are threads of it)."""
    with pytest.raises(SystemExit) as ended:
        call_command("promote", *map(str, args))
    out = capsys.readouterr()
    return ended.value.code, out.out, out.err


def running(net):
    return {n: hashlib.sha256(r.running_config().encode()).hexdigest() for n, r in net.routers.items()}


def test_manage_py_promote_end_to_end(twin, prod, operator, approver, approver2, settings, tmp_path, capsys):
    lab_dir, result = twin
    # given the run as the web app holds it, sealed by the evidence app into the ledger
    lab = Lab.objects.create(name="prod", folder=str(lab_dir), routers=["r1", "r2"])
    change = ChangeRequest.objects.create(
        operator=operator, lab=lab, title=CHANGE["title"], devices=CHANGE["devices"], expect=CHANGE["expect"]
    )
    run = PreflightRun.objects.create(
        run_id=result["run_id"],
        change=change,
        backend="netns",
        status="finished",
        verdict=result["verdict"],
        risk_tier=result["risk"]["tier"],
        result=result,
    )
    sealed = run_seal(
        result, lab_dir=lab_dir, change_text=None, out_dir=tmp_path / "b", frameworks=[], operator="olivia"
    )
    run.bundle_digest = sealed.digest
    run.save()
    # when the approvers decide in the app, their decisions are signed approvals they can download
    needed = 2 if run.risk_tier == "high" else 1
    files = []
    for who in (approver, approver2)[:needed]:
        decision = approval_decide(
            run=run, approver=who, decision="approve", comment="customer prefix, expected"
        )
        path = tmp_path / f"approval-{who.username}.json"
        path.write_text(json.dumps(SignedApproval.objects.get(approval=decision).envelope))
        files += ["--approval", path]
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"devices": {n: {k: v for k, v in prod.device(n).items() if k != "name"} for n in prod.routers}}
        )
    )
    bundle = sealed.bundle_path
    before = running(prod)

    # then a dry-run passes, shows the delta, and changes nothing
    code, out, err = promote(capsys, bundle, *files, "--inventory", inventory)
    assert code == 0, out + err
    for gate in ("G1", "G2", "G3", "G4"):
        assert any(line.split()[:2] == [gate, "pass"] for line in out.splitlines()), out
    assert "device r1: no drift" in out and "device r2: no drift" in out
    assert "+ ip route 192.0.2.0/24 Null0" in out and "outcome  dry_run" in out
    assert running(prod) == before
    assert UsedApprovalToken.objects.count() == 0, "a dry-run spends no approval"

    # live without the site setting: refused at G4, nothing changed
    settings.AEGIS_ALLOW_LIVE_PROMOTION = False
    code, out, _ = promote(capsys, bundle, *files, "--inventory", inventory, "--live")
    assert code == 1 and any(line.split()[:2] == ["G4", "FAIL"] for line in out.splitlines()), out
    assert running(prod) == before

    # a tampered bundle: refused at G1 before any device is contacted
    doc = json.loads(bundle.read_text())
    payload = doc["dsseEnvelope"]["payload"]
    k = len(payload) // 2
    doc["dsseEnvelope"]["payload"] = payload[:k] + ("A" if payload[k] != "A" else "B") + payload[k + 1 :]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc))
    code, out, _ = promote(capsys, tampered, *files, "--inventory", inventory)
    assert code == 1 and any(line.split()[:2] == ["G1", "FAIL"] for line in out.splitlines()), out
    assert "device r1" not in out

    # an inventory without the changed router is an input error naming it; no attempt is recorded
    partial = tmp_path / "partial.yml"
    partial.write_text(
        yaml.safe_dump({"devices": {"r2": {k: v for k, v in prod.device("r2").items() if k != "name"}}})
    )
    attempts = PromotionRecord.objects.count()
    code, _, err = promote(capsys, bundle, *files, "--inventory", partial)
    assert code == 2 and "no device r1" in err, err
    assert PromotionRecord.objects.count() == attempts

    # live with the site setting: applied, verified against the twin, approvals spent
    settings.AEGIS_ALLOW_LIVE_PROMOTION = True
    code, out, err = promote(capsys, bundle, *files, "--inventory", inventory, "--live")
    assert code == 0, out + err
    assert "outcome  applied" in out and "verification matches the twin" in out
    assert "ip route 192.0.2.0/24 Null0" in prod.routers["r1"].running_config()
    assert UsedApprovalToken.objects.count() == needed

    # the same approval again: a replay, refused at G3
    code, out, _ = promote(capsys, bundle, *files, "--inventory", inventory)
    assert code == 1 and "replay refused" in out, out

    # every attempt is a record with a ledger leaf; the live one also a verification leaf
    rows = list(PromotionRecord.objects.order_by("created"))
    assert [r.outcome for r in rows] == ["dry_run", "refused", "refused", "applied", "refused"]
    for row in rows:
        leaf = LedgerEntry.objects.get(index=row.ledger_index)
        assert (leaf.kind, leaf.payload_digest) == ("promotion", row.record_digest)
    # the tampered copy still names the bundle's digest: the attempt shows on that bundle, refused at G1
    assert all(r.bundle == Bundle.objects.get(digest=sealed.digest) for r in rows)
    assert not next(c for c in rows[2].record["gate"]["checks"] if c["gate"] == "G1")["passed"]
    assert LedgerEntry.objects.get(index=rows[3].verification_ledger_index).kind == "promotion-verification"


def test_a_cli_run_is_approved_and_promoted(prod, operator, approver, approver2, tmp_path, capsys):
    # given the production lab and a change file, preflighted on the command line on a real twin
    lab_dir = tmp_path / "prodlab"
    lab_dir.mkdir()
    (lab_dir / "prod.clab.yml").write_text(CLAB)
    for name, conf in CONFIGS.items():
        (lab_dir / name).mkdir()
        (lab_dir / name / "frr.conf").write_text(conf)
        (lab_dir / name / "daemons").write_text("bgpd=yes\n")
    change = tmp_path / "change.yml"
    change.write_text(yaml.safe_dump({k: v for k, v in CHANGE.items() if k != "source"}))
    with pytest.raises(SystemExit) as ended:
        call_command("preflight", str(lab_dir), "--change", str(change), "--backend", "netns",
                     "--operator", operator.username, "--out", str(tmp_path / "run"))
    out = capsys.readouterr()
    assert ended.value.code == 10, out.out + out.err
    # then the run is in the approvers' queue, as a web run would be
    run = PreflightRun.objects.get()
    assert run.verdict == "needs_approval" and run.bundle_digest and run.change.operator == operator
    from preflight.selectors import approval_queue

    assert [r.run_id for r in approval_queue(approver)] == [run.run_id]
    # when the approvers decide in the app
    files = []
    for who in (approver, approver2)[: 2 if run.risk_tier == "high" else 1]:
        decision = approval_decide(run=run, approver=who, decision="approve", comment="customer prefix")
        path = tmp_path / f"approval-{who.username}.json"
        path.write_text(json.dumps(SignedApproval.objects.get(approval=decision).envelope))
        files += ["--approval", path]
    assert approval_queue(approver) == []
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"devices": {n: {k: v for k, v in prod.device(n).items() if k != "name"} for n in prod.routers}}
        )
    )
    before = running(prod)
    # then its bundle passes every gate in a dry-run, which changes nothing
    code, out, err = promote(capsys, Bundle.objects.get(run_id=run.run_id).json_path, *files,
                             "--inventory", inventory)
    assert code == 0, out + err
    for gate in ("G1", "G2", "G3", "G4"):
        assert any(line.split()[:2] == [gate, "pass"] for line in out.splitlines()), out
    assert "outcome  dry_run" in out and running(prod) == before
