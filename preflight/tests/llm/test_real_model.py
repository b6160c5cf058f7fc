"""The real small model (SmolLM2-135M-Instruct, served by `manage.py llm_serve`).

Its proposals are poor, which is the point: the pipeline must catch them, and say why. The
pipeline runs on the simulator backend here (the twin itself is tested by its own suite);
static analysis still uses FRR's real parser.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import httpx
import pytest

from preflight.core.pipeline import run_preflight
from preflight.llm.answer import answer_to_change
from preflight.llm.client import chat_complete
from preflight.llm.prompt import prompt_template_load
from preflight.llm.run import preflight_intent
from preflight.llm.server import embedded_stop_all, embedded_url
from twin.topology import load_lab

pytestmark = pytest.mark.llm

REPO = Path(__file__).resolve().parents[3]
LAB = REPO / "labs" / "triangle"
# The same intent in the first two tests: the server's prompt cache then makes the second cheap.
INTENT = "Shut down the BGP session between r1 and r2"


@pytest.fixture(scope="module")
def triangle():
    return load_lab(LAB)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def test_a_poor_real_proposal_is_blocked_with_its_reason_and_full_provenance(smollm2, triangle):
    # given the real model and an intent it is far too small to get right
    # when AEGIS asks it and verifies the answer like any change
    result = preflight_intent(
        LAB, INTENT, config=smollm2.config(timeout_s=300), topology=triangle, backend="simulator"
    )
    # then the run is blocked, for a reason the evidence shows
    assert result["verdict"] == "blocked", result["reasons"]
    codes = {r["code"] for r in result["reasons"]}
    if "STATIC_ERROR" in codes:
        errors = [f for f in result["static_findings"] if f["severity"] == "error"]
        assert errors and {f["device"] for f in errors} <= set(result["change"]["devices"])
    else:
        assert codes & {"SESSION_LOST", "PREFIX_LOST", "UNDECLARED_EFFECT", "EXPECTED_MISSING",
                        "LLM_NOT_JSON", "LLM_SCHEMA", "LLM_GUARD", "LLM_CHANGE_INVALID", "LLM_EMPTY_CHANGE"}, codes  # fmt: skip
    # and the provenance says exactly who proposed what, from which prompt
    llm = result["llm"]
    assert llm["endpoint"] == smollm2.url
    assert llm["model"] == smollm2.model and llm["served_model"]
    assert llm["weights_sha256"] == smollm2.sha256 == _file_sha256(smollm2.gguf)
    assert llm["sampling"] == {"temperature": 0.0, "top_p": 1.0, "seed": 42, "max_tokens": 512}
    assert llm["server"] == "external"  # asked over HTTP like any site server; the digest came from llm_serve
    assert llm["seed"] == 42
    template = prompt_template_load()
    assert llm["prompt_template"] == {
        "name": "propose-v1.txt",
        "version": "propose/1",
        "sha256": template.sha256,
    }
    assert INTENT in llm["prompt"] and "AS 65001" in llm["prompt"]
    assert llm["raw"] and llm["raw"] == llm["raw_answers"][-1]
    assert llm["tokens"]["prompt"] > 500 and llm["tokens"]["completion"] > 0
    assert llm["seconds"] > 0 and 1 <= len(llm["attempts"]) <= 2
    assert result["change"]["source"] == "llm"
    # and the egress record shows the one destination this run contacted
    assert [(c["address"], c["purpose"]) for c in result["egress"]["contacted"]] == [("127.0.0.1", "llm")]


def test_cut_off_answers_are_retried_once_then_blocked_without_spawning(smollm2, triangle):
    # given a token budget far too small for a JSON answer
    config = smollm2.config(max_tokens=12, timeout_s=300)
    result = preflight_intent(LAB, INTENT, config=config, topology=triangle, backend="simulator")
    # then both attempts are recorded, the error was fed back, and the run is blocked before any twin
    assert result["verdict"] == "blocked"
    assert result["reasons"][0]["code"] == "LLM_NOT_JSON"
    assert "cut off at max_tokens=12" in result["reasons"][0]["message"]
    attempts = result["llm"]["attempts"]
    assert [a["error_code"] for a in attempts] == ["LLM_NOT_JSON", "LLM_NOT_JSON"]
    assert "rejected" in attempts[0]["feedback"]
    assert all(a["finish_reason"] == "length" for a in attempts)
    assert result["twin"]["spawned"] is False and result["change"]["devices"] == {}


def test_valid_harmless_json_from_the_real_server_passes_the_same_checks(smollm2, triangle):
    # given the real server constrained by a fixed schema to one harmless change
    intent = "Add a discard route for 198.51.100.0/24 on r3"
    fixed = {
        "type": "object",
        "properties": {
            "devices": {"type": "object", "properties": {"r3": {"const": "ip route 198.51.100.0/24 Null0\n"}},
                        "required": ["r3"], "additionalProperties": False},
            "expect": {"type": "object", "properties": {
                "prefixes_added": {"type": "object", "properties": {"r3": {"type": "array", "items": {
                    "const": "198.51.100.0/24"}, "minItems": 1, "maxItems": 1}}, "required": ["r3"],
                    "additionalProperties": False},
                "prefixes_removed": {"type": "object", "additionalProperties": False},
                "sessions_removed": {"type": "array", "maxItems": 0}},
                "required": ["prefixes_added", "prefixes_removed", "sessions_removed"], "additionalProperties": False},
            "rationale": {"type": "string", "maxLength": 40},
        },
        "required": ["devices", "expect", "rationale"],
        "additionalProperties": False,
    }  # fmt: skip
    # Generous: constrained decoding of a fixed text still spends a token per piece of it.
    config = smollm2.config(max_tokens=400, timeout_s=300)
    # A short prompt: the schema fixes the answer, so the lab context would only cost time.
    messages = [
        {"role": "system", "content": "You write FRR routing changes as one JSON object."},
        {"role": "user", "content": intent},
    ]
    answer = chat_complete(config, smollm2.url, messages, fixed)
    # when the answer goes through the same parsing, guards and pipeline as any proposal
    change = answer_to_change(answer.content, intent, triangle)
    result = run_preflight(LAB, change, backend="simulator", topology=triangle)
    # then it is a usable change, and the pipeline finds nothing to block
    assert json.loads(answer.content)["devices"] == {"r3": "ip route 198.51.100.0/24 Null0\n"}
    assert change["source"] == "llm" and change["devices"] == {"r3": "ip route 198.51.100.0/24 Null0\n"}
    assert result["verdict"] in ("ship_ready", "needs_approval"), result["reasons"]
    assert result["static_findings"] == [] or all(f["severity"] != "error" for f in result["static_findings"])


def test_embedded_server_starts_in_process_from_the_gguf(smollm2):
    # given only a GGUF file (no AEGIS_LLM_URL)
    try:
        url, facts = embedded_url(str(smollm2.gguf))
        # then a loopback OpenAI-compatible server answers, and the weights digest is the file's
        assert url.startswith("http://127.0.0.1:")
        assert facts["weights_sha256"] == smollm2.sha256
        assert facts["server"] == "embedded llama.cpp (xllamacpp)"
        models = httpx.get(url + "/models", timeout=10).json()
        assert models["data"][0]["id"] == smollm2.gguf.stem
        # and the same server is reused, not started twice
        assert embedded_url(str(smollm2.gguf))[0] == url
    finally:
        embedded_stop_all()
    # and once stopped, nothing listens there any more
    host, port = url.removeprefix("http://").removesuffix("/v1").split(":")
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=2):
        pass
