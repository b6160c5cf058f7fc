"""The hostile input corpus: every case in tests/hostile/*.yml is refused, clearly, with nothing left.

Each data file names its `kind`; each case carries the refusal it must get (`says`, `code` or
`check`). One parametrized test runs them all (`pytest tests/hostile -q` prints the count), and
for every case also checks what the issue asks beyond the refusal: no 500, no row written, no
twin spawned. The tamper sweep flips every byte of one sealed bundle.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LAB = REPO / "labs" / "triangle"
VALID_NODE = "{kind: linux, binds: ['ok.conf:/etc/frr/frr.conf']}"


def corpus() -> list[Any]:
    params = []
    for path in sorted(HERE.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        marks = [pytest.mark.django_db] if data["kind"] in ("config_lines", "api_bodies", "desired") else []
        for case in data["cases"]:
            params.append(pytest.param(data["kind"], case, id=f"{data['kind']}/{case['id']}", marks=marks))
    return params


CASES = corpus()


def expand(case: dict[str, Any], key: str) -> str:
    text = case.get(key, "")
    if "repeat" in case:
        unit, count = case["repeat"]
        text += unit * count
    return text


def twin_runs_on_host() -> set[str]:
    from twin import runstate

    return set(os.listdir(runstate.RUN_ROOT)) if runstate.RUN_ROOT.is_dir() else set()


@pytest.mark.parametrize("kind, case", CASES)
def test_hostile_case_is_refused(kind: str, case: dict[str, Any], request: pytest.FixtureRequest) -> None:
    before = twin_runs_on_host()
    if kind in ("config_lines", "api_bodies"):
        api_case(kind, case, request)
    elif kind == "intents":
        intent_case(case)
    elif kind == "topologies":
        topology_case(case, request.getfixturevalue("tmp_path"))
    elif kind == "approvals":
        approval_case(case)
    elif kind == "bundles":
        bundle_case(case)
    elif kind == "desired":
        desired_case(case, request)
    else:
        pytest.fail(f"unknown corpus kind {kind!r}")
    # nothing was spawned for it (other engineers' twins may come and go: only new ones of ours count)
    ours = [r for r in twin_runs_on_host() - before
            if str(os.getpid()) in json.dumps(_state(r))]
    assert ours == [], f"a twin was spawned for hostile input: {ours}"


def _state(name: str) -> dict[str, Any]:
    from twin import runstate

    return runstate.state_read(runstate.RUN_ROOT / name) or {}


# ---- API: config lines and whole bodies ---------------------------------------------------


def api_case(kind: str, case: dict[str, Any], request: pytest.FixtureRequest) -> None:
    from rest_framework.test import APIClient

    from preflight.models import ChangeRequest, PreflightRun

    request.getfixturevalue("aegis_dirs")
    operator = request.getfixturevalue("operator")
    request.getfixturevalue("lab")
    client = APIClient()
    client.force_authenticate(operator)
    url = "/api/preflight/run"
    if kind == "config_lines":
        body = {"lab": "triangle", "title": "hostile", "devices": {"r3": expand(case, "lines")}}
        answer = client.post(url, body, format="json")
        where: list[str] = ["devices", "r3"] if "at least one device" not in case["says"] else ["non_field_errors"]
        status = 400
    else:
        status = case.get("status", 400)
        where = case["where"]
        if "body" in case:
            answer = client.post(url, case["body"], format="json")
        else:
            if "raw" in case:
                raw = case["raw"].encode()
            elif "raw_nested" in case:
                raw = b'{"lab": ' + b"[" * case["raw_nested"] + b"]" * case["raw_nested"] + b"}"
            else:
                pad = case["body_bytes"]
                raw = b'{"lab": "triangle", "title": "t", "description": "' + b"A" * pad + b'"}'
            answer = client.generic("POST", url, raw, content_type="application/json")
    assert answer.status_code != 500
    assert answer.status_code == status, (answer.status_code, answer.content[:300])
    assert answer["Content-Type"].startswith("application/json"), answer["Content-Type"]
    node: Any = answer.json()
    for key in where:
        assert isinstance(node, dict) and key in node, (where, answer.json())
        node = node[key]
    text = " ".join(map(str, node)) if isinstance(node, list) else str(node)
    says = case.get("says_api", case["says"])
    assert says in text, (says, text[:300])
    # nothing half-written
    assert ChangeRequest.objects.count() == 0 and PreflightRun.objects.count() == 0
    if kind == "config_lines":
        cli_path_refuses(case)


def cli_path_refuses(case: dict[str, Any]) -> None:
    """The same lines in a change file: change_load + precheck (what `manage.py preflight` runs)."""
    from preflight.core.change import ChangeError, change_load
    from preflight.core.guards import GuardRejection, precheck
    from twin.topology import load_lab

    topology = load_lab(LAB)
    # Double-quoted YAML escapes every character, so the lines reach the guards exactly as given.
    text = yaml.safe_dump({"title": "hostile", "devices": {"r3": expand(case, "lines")}}, default_style='"')
    with pytest.raises((ChangeError, GuardRejection)) as refused:
        precheck(change_load(text, topology), topology)
    says = case.get("says_cli", case["says"])
    if says == "at least one device":
        says = "no config lines"
    assert says in str(refused.value), (says, str(refused.value)[:300])


# ---- desired configs (API body, web upload, CLI folder) ------------------------------------------


def desired_payload(case: dict[str, Any]) -> Any:
    """The file's content: r3's real frr.conf with the hostile part added, or the case's own."""
    if "value" in case:
        return case["value"]
    if "bytes_hex" in case:
        return bytes.fromhex(case["bytes_hex"])
    if "text" in case:
        return case["text"]
    base = (LAB / "r3" / "frr.conf").read_text()
    if "insert_after" in case:
        anchor, added = case["insert_after"]
        assert anchor + "\n" in base, anchor
        return base.replace(anchor + "\n", f"{anchor}\n{added}\n", 1)
    return base + expand(case, "append")


def desired_case(case: dict[str, Any], request: pytest.FixtureRequest) -> None:
    from preflight.models import ChangeRequest, PreflightRun

    request.getfixturevalue("aegis_dirs")
    payload = desired_payload(case)
    for via in case.get("via", ["api", "cli"]):
        says = case.get(f"says_{via}", case.get("says"))
        if via == "api":
            desired_api_refuses(case, payload, says, request)
        elif via == "web":
            desired_web_refuses(case, payload, says, request)
        else:
            desired_cli_refuses(case, payload, says, request.getfixturevalue("tmp_path"))
        # nothing half-written, whichever way it came
        assert ChangeRequest.objects.count() == 0 and PreflightRun.objects.count() == 0, via


def desired_api_refuses(case: dict[str, Any], payload: Any, says: str, request: pytest.FixtureRequest) -> None:
    from rest_framework.test import APIClient

    request.getfixturevalue("lab")
    client = APIClient()
    client.force_authenticate(request.getfixturevalue("operator"))
    node = case.get("node", "r3")
    answer = client.post("/api/preflight/run", {"lab": "triangle", "title": "hostile", "desired": {node: payload}},
                         format="json")
    assert answer.status_code == 400, (answer.status_code, answer.content[:300])
    assert answer["Content-Type"].startswith("application/json")
    errors = answer.json()
    where = case.get("where_api", "desired")
    assert where in errors, errors
    text = json.dumps(errors[where], ensure_ascii=False)
    assert says in text, (says, text[:300])


def desired_web_refuses(case: dict[str, Any], payload: Any, says: str, request: pytest.FixtureRequest) -> None:
    import html

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    lab = request.getfixturevalue("lab")
    client = Client()
    client.force_login(request.getfixturevalue("operator"))
    body = payload if isinstance(payload, bytes) else str(payload).encode("utf-8")
    answer = client.post("/preflight/", {
        "lab": lab.pk, "lab_name": lab.name, "title": "hostile", "backend": "simulator",
        f"desired_file_{case.get('node', 'r3')}": SimpleUploadedFile("r3.conf", body, "text/plain"),
    })
    assert answer.status_code == 400, answer.status_code
    page = html.unescape(answer.content.decode())
    assert says in page, (says, [ln for ln in page.splitlines() if "error" in ln][:5])


_TRIANGLE: list[Any] = []


def _triangle(load_lab: Any) -> Any:
    """The lab, loaded once for all desired cases (nothing in them changes it)."""
    if not _TRIANGLE:
        _TRIANGLE.append(load_lab(LAB))
    return _TRIANGLE[0]


def desired_cli_refuses(case: dict[str, Any], payload: Any, says: str, tmp_path: Path) -> None:
    """`manage.py preflight LAB --desired DIR`: desired_read + change_from_desired, as the command runs them."""
    from preflight.core.change import ChangeError
    from preflight.core.desired import change_from_desired, desired_read
    from preflight.core.guards import GuardRejection
    from twin.topology import load_lab

    folder = tmp_path / "desired" / "cfg"
    folder.mkdir(parents=True)
    structural = any(k in case for k in ("files", "symlinks", "fifos"))
    for name, text in (case.get("files") or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    for name, target in (case.get("symlinks") or {}).items():
        (folder / name).symlink_to(target)
    for name in case.get("fifos") or []:
        os.mkfifo(folder / name)
    if not structural:
        (folder / "r3.conf").write_bytes(payload if isinstance(payload, bytes) else payload.encode("utf-8"))
    topology = _triangle(load_lab)
    with pytest.raises((ChangeError, GuardRejection)) as refused:
        change_from_desired(topology, desired_read(folder, topology))
    assert says in str(refused.value), (says, str(refused.value)[:300])


# ---- intents ---------------------------------------------------------------------------------


def intent_case(case: dict[str, Any]) -> None:
    from preflight.llm.intent import IntentRejected, intent_check

    value = case["intent_value"] if "intent_value" in case else expand(case, "intent")
    with pytest.raises(IntentRejected) as refused:
        intent_check(value)
    assert refused.value.code == case["code"], str(refused.value)
    assert str(refused.value), "a refusal says what to fix"


# ---- topologies ----------------------------------------------------------------------------


def topology_case(case: dict[str, Any], tmp_path: Path) -> None:
    from twin.base import TopologyError
    from twin.topology import load_lab

    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "ok.conf").write_text("hostname r\n")
    for name, text in (case.get("files") or {}).items():
        (lab / name).parent.mkdir(parents=True, exist_ok=True)
        (lab / name).write_text(text)
    for name, size in (case.get("gen_file") or {}).items():
        (lab / name).write_text("!" * size)
    for name, target in (case.get("symlinks") or {}).items():
        (lab / name).symlink_to(target)
    if not case.get("no_clab"):
        topo = lab / "x.clab.yml"
        if "clab_bytes" in case:
            topo.write_bytes(bytes.fromhex(case["clab_bytes"]))
        elif "gen" in case:
            topo.write_text(generated_topology(case["gen"]))
        else:
            topo.write_text(case["clab"].replace(": OK", ": " + VALID_NODE))
    if case.get("refusal") == "warning":
        # The lab loads, but the dangerous line is dropped (never run) and the warning says why.
        topology = load_lab(lab)
        assert any(case["says"] in w for w in topology.warnings), topology.warnings
        assert all(case["says"] not in " ".join(n.exec) for n in topology.nodes.values())
        for node in topology.nodes.values():
            for command in node.exec:
                from twin.topology import exec_refusal

                assert exec_refusal(command) is None, command
        return
    with pytest.raises(TopologyError) as refused:
        load_lab(lab)
    assert case["says"] in str(refused.value), (case["says"], str(refused.value)[:300])


def generated_topology(gen: dict[str, int]) -> str:
    if "bytes" in gen:
        return "name: x\n# " + "x" * gen["bytes"] + "\ntopology: {nodes: {}}\n"
    nodes = gen.get("nodes", 2)
    out = ["name: big", "topology:", "  nodes:"]
    out += [f"    n{i}: {VALID_NODE}" for i in range(nodes)]
    if "links" in gen:
        out.append("  links:")
        out += [f"    - endpoints: ['n0:a{i}', 'n1:a{i}']" for i in range(gen["links"])]
    return "\n".join(out) + "\n"


# ---- approvals -----------------------------------------------------------------------------


def approval_case(case: dict[str, Any]) -> None:
    from promote.core.approvals import approver_keyring
    from promote.core.gate import gate_evaluate
    from promote.tests.bundles import NOW, Approver, Site, result_doc

    site = Site()
    bundle = site.seal(result_doc(verdict="needs_approval", risk="medium"))
    other = site.seal(result_doc(verdict="needs_approval", risk="medium", run_id="20261125-200001-000000"))
    alice, bob, olivia, mallory = Approver("alice"), Approver("bob"), Approver("olivia"), Approver("mallory")
    ring = approver_keyring([alice.registered, bob.registered, olivia.registered])
    used: set[str] = set()
    envelopes = APPROVAL_ATTACKS[case["attack"]](bundle, other, alice, bob, olivia, mallory, used)
    result = gate_evaluate(bundle=bundle, site_keys=site.site_keys, log_keys=site.log_keys,
                           approvals=envelopes, approver_keys=ring, used_jtis=used, now=NOW,
                           ledger_origin="aegis.test/ledger")
    assert not result.devices_allowed, f"the gate accepted {case['attack']}"
    reasons = [r for c in result.checks if c.gate in ("G2", "G3") and not c.passed for r in c.reasons]
    assert any(case["says"] in r for r in reasons), reasons


def _resign_statement(env: dict[str, Any], mutate: Any, key: Any) -> dict[str, Any]:
    from promote.core.approvals import approval_sign

    st = json.loads(base64.b64decode(env["payload"]))
    mutate(st)
    return approval_sign(st, key)


def _edit_payload(env: dict[str, Any], mutate: Any) -> dict[str, Any]:
    env = copy.deepcopy(env)
    st = json.loads(base64.b64decode(env["payload"]))
    mutate(st)
    env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    return env


def _sig(env: dict[str, Any], **kw: Any) -> dict[str, Any]:
    env = copy.deepcopy(env)
    env["signatures"][0].update(kw)
    return env


def _flip_payload_byte(env: dict[str, Any]) -> dict[str, Any]:
    env = copy.deepcopy(env)
    raw = bytearray(base64.b64decode(env["payload"]))
    raw[len(raw) // 2] ^= 0x01
    env["payload"] = base64.b64encode(bytes(raw)).decode()
    return env


def _set(path: list[str], value: Any) -> Any:
    def mutate(st: dict[str, Any]) -> None:
        node = st
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _del(path: list[str]) -> Any:
    def mutate(st: dict[str, Any]) -> None:
        node = st
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return mutate


def _attacks() -> dict[str, Any]:
    from promote.tests.bundles import NOW

    a: dict[str, Any] = {}

    def add(name: str):
        def deco(fn: Any) -> Any:
            a[name] = fn
            return fn
        return deco

    add("signer_unregistered")(lambda b, o, al, bo, ol, ma, used: [ma.approve(b)])
    add("keyid_hint_forged")(lambda b, o, al, bo, ol, ma, used: [_sig(ma.approve(b), keyid=al.key.keyid)])
    add("name_mismatch")(lambda b, o, al, bo, ol, ma, used: [_named(bo, b, "alice")])
    add("payload_byte_flip")(lambda b, o, al, bo, ol, ma, used: [_flip_payload_byte(al.approve(b))])
    add("payload_rebind_unsigned")(lambda b, o, al, bo, ol, ma, used: [
        _edit_payload(al.approve(o), _set(["subject", 0, "digest", "sha256"], b["digest"][7:]))])
    add("payload_extend_expiry_unsigned")(lambda b, o, al, bo, ol, ma, used: [
        _edit_payload(al.approve(b, at=NOW - timedelta(days=3)),
                      _set(["predicate", "aegis", "expires_at"], "2099-01-01T00:00:00Z"))])
    add("sig_truncate")(lambda b, o, al, bo, ol, ma, used: [
        _sig(al.approve(b), sig=al.approve(b)["signatures"][0]["sig"][:40])])
    add("sig_zero")(lambda b, o, al, bo, ol, ma, used: [_sig(al.approve(b), sig=base64.b64encode(bytes(64)).decode())])
    add("sig_garbage")(lambda b, o, al, bo, ol, ma, used: [_sig(al.approve(b), sig="!!not base64!!")])
    add("sig_swap")(lambda b, o, al, bo, ol, ma, used: [
        _sig(al.approve(b), sig=al.approve(o)["signatures"][0]["sig"])])

    def double(b, o, al, bo, ol, ma, used):
        env = al.approve(b)
        env["signatures"].append(bo.approve(b)["signatures"][0])
        return [env]
    a["sig_double"] = double

    def none(b, o, al, bo, ol, ma, used):
        env = al.approve(b)
        env["signatures"] = []
        return [env]
    a["sig_none"] = none

    def ptype(b, o, al, bo, ol, ma, used):
        env = al.approve(b)
        env["payloadType"] = "text/plain"
        return [env]
    a["payload_type"] = ptype
    a["not_envelope"] = lambda b, o, al, bo, ol, ma, used: [{"approval": "yes"}]
    a["envelope_list"] = lambda b, o, al, bo, ol, ma, used: [[al.approve(b)]]

    def not_json(b, o, al, bo, ol, ma, used):
        from evidence.core.dsse import dsse_sign
        from promote.core.approvals import IN_TOTO_PAYLOAD_TYPE
        return [dsse_sign(IN_TOTO_PAYLOAD_TYPE, b"approved, trust me", al.key)]
    a["statement_not_json"] = not_json
    a["statement_wrong_type"] = lambda b, o, al, bo, ol, ma, used: [
        _resign_statement(al.approve(b), _set(["_type"], "https://example.com/Other"), al.key)]
    a["statement_wrong_format"] = lambda b, o, al, bo, ol, ma, used: [
        _resign_statement(al.approve(b), _set(["predicate", "aegis", "format"], "aegis.approval/v0"), al.key)]
    a["statement_missing_jti"] = lambda b, o, al, bo, ol, ma, used: [
        _resign_statement(al.approve(b), _del(["predicate", "aegis", "jti"]), al.key)]
    a["other_bundle"] = lambda b, o, al, bo, ol, ma, used: [al.approve(o)]
    a["expired"] = lambda b, o, al, bo, ol, ma, used: [al.approve(b, at=NOW - timedelta(days=2), ttl_s=3600)]
    a["expired_1s"] = lambda b, o, al, bo, ol, ma, used: [al.approve(b, at=NOW - timedelta(seconds=3601), ttl_s=3600)]
    a["future"] = lambda b, o, al, bo, ol, ma, used: [al.approve(b, at=NOW + timedelta(hours=2))]

    def replayed(b, o, al, bo, ol, ma, used):
        env = al.approve(b, jti="a" * 32)
        used.add("a" * 32)  # spent by an earlier promotion
        return [env]
    a["replayed"] = replayed
    a["replayed_same_request"] = lambda b, o, al, bo, ol, ma, used: [al.approve(b, jti="b" * 32)] * 2
    a["self_approval"] = lambda b, o, al, bo, ol, ma, used: [ol.approve(b, operator="olivia")]
    a["role_auditor"] = lambda b, o, al, bo, ol, ma, used: [al.approve(b, role="auditor")]
    a["role_operator"] = lambda b, o, al, bo, ol, ma, used: [al.approve(b, role="operator")]
    a["rejection"] = lambda b, o, al, bo, ol, ma, used: [al.approve(b, decision="reject")]
    a["digest_short_signed"] = lambda b, o, al, bo, ol, ma, used: [
        _resign_statement(al.approve(b), _set(["subject", 0, "digest", "sha256"], "00"), al.key)]
    return a


def _named(signer: Any, bundle: dict[str, Any], name: str) -> dict[str, Any]:
    """An approval that names `name` as approver, signed with `signer`'s own registered key."""
    from promote.core.approvals import approval_sign, approval_statement
    from promote.tests.bundles import NOW

    st = approval_statement(bundle_digest=bundle["digest"], run_id="r", approver=name, role="approver",
                            decision="approve", comment="ok", issued_at=NOW, ttl_s=3600, operator="olivia")
    return approval_sign(st, signer.key)


APPROVAL_ATTACKS = _attacks()


# ---- bundles -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed_bundle() -> tuple[Any, dict[str, Any], bytes, dict[str, Any]]:
    return _sealed()


_SEALED: list[Any] = []


def _sealed() -> tuple[Any, dict[str, Any], bytes, dict[str, Any]]:
    if not _SEALED:
        from evidence.core.keys import SigningKey
        from evidence.tests.conftest import core_bundle, result_fixture

        site = SigningKey.generate()
        bundle, data, statement = core_bundle(result_fixture("needs_approval"), site,
                                              change_text="title: t\ndevices: {r3: 'ip route 10.9.0.0/24 Null0'}\n")
        other, other_data, _ = core_bundle(result_fixture("blocked"), site)
        _SEALED.append((site, bundle, data, statement, other, other_data))
    return _SEALED[0]


def bundle_case(case: dict[str, Any]) -> None:
    from evidence.verify_standalone import verify_bytes

    site, bundle, data, statement, other, other_data = _sealed()
    forged = BUNDLE_TAMPERS[case["tamper"]](copy.deepcopy(bundle), data, statement, other, other_data, site)
    checks = verify_bytes(forged, {site.keyid: site.public_key})
    failed = [c.name for c in checks if not c.ok]
    assert failed, f"tamper {case['tamper']} went unnoticed"
    assert failed[0] == case["check"], (failed, [c.detail for c in checks if not c.ok])
    if case.get("gate") != "accepts":
        gate_refuses(forged, site)


def gate_refuses(forged: bytes, site: Any) -> None:
    """The promotion gate's G1 refuses the same bytes (when they are a bundle at all)."""
    from promote.core.gate import integrity_check

    try:
        as_bundle = json.loads(forged)
    except ValueError:
        return  # not JSON (or a PDF): nothing for the gate to even read
    if not isinstance(as_bundle, dict):
        return
    check, _facts = integrity_check(as_bundle, site_keys={site.keyid: site.public_key},
                                    log_keys=[site.public_key], ledger_origin="aegis.test/ledger")
    assert not check.passed, "G1 accepted a tampered bundle"


def _dumps(b: dict[str, Any]) -> bytes:
    from evidence.core.bundle import bundle_dumps

    return bundle_dumps(b)


def _statement_of(b: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))


def _with_statement(b: dict[str, Any], st: dict[str, Any], *, redigest: bool) -> bytes:
    payload = json.dumps(st, sort_keys=True, separators=(",", ":")).encode()
    b["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    if redigest:
        b["digest"] = "sha256:" + hashlib.sha256(payload).hexdigest()
    return _dumps(b)


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def _proof_lines(b: dict[str, Any]) -> tuple[list[str], str]:
    head, _, note = b["ledger"]["tlog_proof"].partition("\n\n")
    return head.split("\n"), note


def _tampers() -> dict[str, Any]:
    from evidence.core.bundle import statement_seal
    from evidence.core.keys import SigningKey

    t: dict[str, Any] = {}

    def payload_byte(b, data, st, o, od, site):
        pos = data.index(b'"payload": "') + 200
        return _flip(data, pos)
    t["payload_byte"] = payload_byte

    def payload_verdict(b, data, st, o, od, site, redigest=False):
        s = _statement_of(b)
        s["predicate"]["verdict"] = "ship_ready"
        return _with_statement(b, s, redigest=redigest)
    t["payload_verdict"] = payload_verdict
    t["payload_verdict_redigest"] = lambda *args: payload_verdict(*args, redigest=True)

    def digest_zero(b, *_):
        b["digest"] = "sha256:" + "0" * 64
        return _dumps(b)
    t["digest_zero"] = digest_zero

    def sig_byte(b, *_):
        sig = bytearray(base64.b64decode(b["dsseEnvelope"]["signatures"][0]["sig"]))
        sig[10] ^= 0x01
        b["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
        return _dumps(b)
    t["sig_byte"] = sig_byte

    def sig_swap(b, data, st, o, *_):
        b["dsseEnvelope"]["signatures"] = o["dsseEnvelope"]["signatures"]
        return _dumps(b)
    t["sig_swap"] = sig_swap

    def sig_none(b, *_):
        b["dsseEnvelope"]["signatures"] = []
        return _dumps(b)
    t["sig_none"] = sig_none

    def sig_keyid(b, *_):
        b["dsseEnvelope"]["signatures"][0]["keyid"] = "0" * 32
        return _dumps(b)
    t["sig_keyid"] = sig_keyid

    def attacker_resign(b, data, st, o, od, site):
        attacker = SigningKey.generate()
        s = copy.deepcopy(st)
        s["predicate"]["verdict"] = "ship_ready"
        env, digest = statement_seal(s, attacker)
        b.update(dsseEnvelope=env, digest=digest, keys={attacker.keyid: attacker.public_pem()})
        return _dumps(b)
    t["attacker_resign"] = attacker_resign

    def key_swap(b, *_):
        (kid, _pem), = b["keys"].items()
        b["keys"] = {kid: SigningKey.generate().public_pem()}
        return _dumps(b)
    t["key_swap"] = key_swap

    def key_byte(b, *_):
        (kid, pem), = b["keys"].items()
        lines = pem.split("\n")
        body = bytearray(base64.b64decode(lines[1]))
        body[-1] ^= 0x01
        lines[1] = base64.b64encode(bytes(body)).decode()
        b["keys"] = {kid: "\n".join(lines)}
        return _dumps(b)
    t["key_byte"] = key_byte

    def proof_truncate(b, *_):
        lines, note = _proof_lines(b)
        b["ledger"]["tlog_proof"] = "\n".join(lines[:-1]) + "\n\n" + note
        return _dumps(b)
    t["proof_truncate"] = proof_truncate

    def proof_hash(b, *_):
        lines, note = _proof_lines(b)
        raw = bytearray(base64.b64decode(lines[-1]))
        raw[0] ^= 0x01
        lines[-1] = base64.b64encode(bytes(raw)).decode()
        b["ledger"]["tlog_proof"] = "\n".join(lines) + "\n\n" + note
        return _dumps(b)
    t["proof_hash"] = proof_hash

    def proof_index(b, *_):
        b["ledger"]["index"] = b["ledger"]["index"] - 1
        return _dumps(b)
    t["proof_index"] = proof_index

    def checkpoint_root(b, *_):
        lines, note = _proof_lines(b)
        origin, size, root_b64, rest = note.split("\n", 3)
        raw = bytearray(base64.b64decode(root_b64))
        raw[0] ^= 0x01
        b["ledger"]["tlog_proof"] = "\n".join(lines) + "\n\n" + "\n".join(
            [origin, size, base64.b64encode(bytes(raw)).decode(), rest])
        return _dumps(b)
    t["checkpoint_root"] = checkpoint_root

    def checkpoint_unsigned(b, *_):
        lines, note = _proof_lines(b)
        body, _, _sigs = note.partition("\n\n")
        b["ledger"]["tlog_proof"] = "\n".join(lines) + "\n\n" + body + "\n\n"
        return _dumps(b)
    t["checkpoint_unsigned"] = checkpoint_unsigned

    def leaf_hash(b, *_):
        b["ledger"]["leaf_hash"] = "00" * 32
        return _dumps(b)
    t["leaf_hash"] = leaf_hash

    def lab_file_text(b, *_):
        s = _statement_of(b)
        files = s["predicate"]["inputs"]["lab"]["files"]
        name = sorted(files)[0]
        files[name]["text"] = (files[name].get("text") or "") + "! attacker\n"
        return _with_statement(b, s, redigest=False)
    t["lab_file_text"] = lab_file_text

    def lab_file_attacker(b, data, st, o, od, site):
        attacker = SigningKey.generate()
        s = copy.deepcopy(st)
        files = s["predicate"]["inputs"]["lab"]["files"]
        name = sorted(files)[0]
        files[name]["text"] = (files[name].get("text") or "") + "! attacker\n"
        env, digest = statement_seal(s, attacker)
        b.update(dsseEnvelope=env, digest=digest)
        return _dumps(b)
    t["lab_file_attacker"] = lab_file_attacker

    def change_text(b, *_):
        s = _statement_of(b)
        s["predicate"]["inputs"]["change_text"] += "# attacker\n"
        return _with_statement(b, s, redigest=False)
    t["change_text"] = change_text

    def pdf_attachment_byte(b, data, st, o, od, site):
        from evidence.core.pdf import report_render

        return report_render(b, st, _flip(data, len(data) // 2))
    t["pdf_attachment_byte"] = pdf_attachment_byte

    def pdf_attachment_other(b, data, st, o, od, site):
        from evidence.core.pdf import report_render

        forged = json.loads(od)
        forged["dsseEnvelope"]["payload"] = b["dsseEnvelope"]["payload"]
        forged["digest"] = b["digest"]
        forged["dsseEnvelope"]["signatures"] = o["dsseEnvelope"]["signatures"]
        return report_render(b, st, _dumps(forged))
    t["pdf_attachment_other"] = pdf_attachment_other
    t["truncate_half"] = lambda b, data, *_: data[: len(data) // 2]
    t["empty"] = lambda *_: b""
    t["not_json"] = lambda *_: b"this is not a bundle\n"
    t["trailing"] = lambda b, data, *_: data + b"{}\n"
    return t


BUNDLE_TAMPERS = _tampers()


def test_every_byte_flip_of_a_sealed_bundle_is_detected() -> None:
    """Tamper detection over every byte position of one bundle: each position XORed with a seeded
    non-zero value must fail verification (the figure in docs/reliability.md)."""
    from evidence.verify_standalone import verify_bytes

    site, _bundle, data, *_ = _sealed()
    trusted = {site.keyid: site.public_key}
    rng = random.Random(17)
    missed = []
    for pos in range(len(data)):
        forged = bytearray(data)
        forged[pos] ^= rng.randrange(1, 256)
        if all(c.ok for c in verify_bytes(bytes(forged), trusted)):
            missed.append(pos)
    assert len(data) > 10_000
    assert missed == [], f"{len(missed)} of {len(data)} byte changes went unnoticed, e.g. at {missed[:5]}"


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 200, len(CASES)
