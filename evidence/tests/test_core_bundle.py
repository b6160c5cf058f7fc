"""Building the statement: pure functions over a result document, no database."""

from __future__ import annotations

import os

import pytest

from evidence.core.bundle import (
    BundleError,
    lab_files_collect,
    result_check,
    statement_build,
    twin_vs_production,
)
from evidence.tests.conftest import LAB, result_fixture


def build(result, **kw):
    args = dict(change_text=None, lab_files=None, operator="o", frameworks=[], controls=[],
                sealed_at="2026-11-25T00:00:00Z", keyid="k" * 32, ledger_origin="aegis.test/ledger")  # fmt: skip
    args.update(kw)
    return statement_build(result, **args)


def test_the_same_inputs_give_the_same_statement():
    assert build(result_fixture("needs_approval")) == build(result_fixture("needs_approval"))


def test_lab_files_skip_changes_hidden_files_and_never_follow_links(tmp_path):
    lab = tmp_path / "lab"
    (lab / "r1").mkdir(parents=True)
    (lab / "changes").mkdir()
    (lab / "lab.clab.yml").write_text("name: x\n")
    (lab / "r1" / "frr.conf").write_text("hostname r1\n")
    (lab / "changes" / "c.yml").write_text("title: t\n")
    (lab / ".git").mkdir()
    (lab / ".git" / "HEAD").write_text("ref\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:hash:::\n")
    os.symlink(secret, lab / "r1" / "leak.conf")
    files = lab_files_collect(lab)
    assert sorted(files) == ["lab.clab.yml", "r1/frr.conf", "r1/leak.conf"]
    assert files["r1/leak.conf"] == {"skipped": "symbolic link: not followed"}
    assert "root:hash" not in str(files)
    assert files["r1/frr.conf"]["text"] == "hostname r1\n"


def test_the_bundled_lab_is_recorded_with_text_and_digests():
    files = lab_files_collect(LAB)
    assert "triangle.clab.yml" in files and files["r1/frr.conf"]["text"].startswith("frr version")


def test_a_simulated_twin_is_always_named_in_the_cip_statement():
    result = result_fixture("needs_approval")
    pipeline_says = list(result["twin"]["differences_from_production"])
    stmt = twin_vs_production(result)
    assert stmt["clause"] == "NERC CIP-010-4 R1.5.2"
    assert stmt["differences"] == pipeline_says  # the pipeline already names it: nothing added
    result["twin"]["differences_from_production"] = ["no forwarding hardware"]
    assert twin_vs_production(result)["differences"][0].startswith("simulated twin: no routing daemons ran")


@pytest.mark.parametrize(
    "bad, field", [([], "result:"), ({"format": "aegis.preflight.result/v1"}, "result.run_id")]
)
def test_result_check_names_the_field(bad, field):
    with pytest.raises(BundleError, match=field):
        result_check(bad)


def test_each_config_subject_points_at_the_recorded_file_that_holds_it():
    from evidence.core.bundle import bundle_dumps, statement_seal
    from evidence.core.keys import SigningKey
    from evidence.tests.conftest import core_bundle
    from evidence.verify_standalone import verify_bytes

    result = result_fixture("needs_approval")
    statement = build(result, lab_files=lab_files_collect(LAB))
    mapping = statement["predicate"]["inputs"]["lab"]["node_config_files"]
    assert mapping == {"r1": "r1/frr.conf", "r2": "r2/frr.conf", "r3": "r3/frr.conf"}
    # A signer who points a subject at another file is caught by the verifier.
    key = SigningKey.generate()
    bundle, _, statement = core_bundle(result, key)
    statement["predicate"]["inputs"]["lab"]["node_config_files"]["r1"] = "r2/frr.conf"
    envelope, digest = statement_seal(statement, key)
    bundle.update(dsseEnvelope=envelope, digest=digest)
    checks = verify_bytes(bundle_dumps(bundle), {key.keyid: key.public_key})
    assert [c.name for c in checks if not c.ok] == ["subjects"]
    assert "r1: config file r2/frr.conf does not match" in checks[-1].detail
