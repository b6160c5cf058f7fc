"""The model's answer is data: parsed, schema-checked, and held to a human change's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preflight.llm.answer import AnswerError, answer_schema, answer_to_change
from twin.topology import load_lab

REPO = Path(__file__).resolve().parents[3]
INTENT = "Advertise 198.51.100.0/24 from r3"


@pytest.fixture(scope="module")
def triangle():
    return load_lab(REPO / "labs" / "triangle")


def _answer(devices, expect=None, rationale="because"):
    expect = expect or {"prefixes_added": {}, "prefixes_removed": {}, "sessions_removed": []}
    return json.dumps({"devices": devices, "expect": expect, "rationale": rationale})


def test_a_valid_answer_becomes_an_llm_change(triangle):
    raw = _answer(
        {
            "r3": "ip route 198.51.100.0/24 Null0\nrouter bgp 65003\n address-family ipv4 unicast\n  network 198.51.100.0/24"
        },
        {"prefixes_added": {"r1": ["198.51.100.0/24"]}, "prefixes_removed": {}, "sessions_removed": []},
        "a discard route anchors the announcement",
    )
    change = answer_to_change(raw, INTENT, triangle)
    assert change["source"] == "llm"
    assert change["devices"]["r3"].endswith("network 198.51.100.0/24\n")
    assert change["expect"]["prefixes_added"] == {"r1": ["198.51.100.0/24"]}
    assert "a discard route anchors the announcement" in change["description"]
    assert change["title"].startswith("LLM proposal: Advertise")


def test_a_markdown_fence_around_json_is_tolerated(triangle):
    raw = "```json\n" + _answer({"r3": "ip route 198.51.100.0/24 Null0"}) + "\n```"
    assert answer_to_change(raw, INTENT, triangle)["devices"] == {"r3": "ip route 198.51.100.0/24 Null0\n"}


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("", "LLM_EMPTY", "empty"),
        ("Sure! Here is the config: ip route 198.51.100.0/24 Null0", "LLM_NOT_JSON", "not JSON"),
        ('{"devices": {"r3": "ip route 198.51.100.0/24 Null0"', "LLM_NOT_JSON", "not JSON"),
        (_answer({"spine9": "ip route 198.51.100.0/24 Null0"}), "LLM_UNKNOWN_DEVICE", "spine9"),
        ('["ip route 198.51.100.0/24 Null0"]', "LLM_SCHEMA", "schema"),
        (json.dumps({"devices": {"r3": "ip route 198.51.100.0/24 Null0"}, "rationale": "x"}), "LLM_SCHEMA", "expect"),
        (_answer({"r3": ["ip route 198.51.100.0/24 Null0"]}), "LLM_SCHEMA", "devices/r3"),
        (_answer({"r3": "   "}), "LLM_EMPTY_CHANGE", "no device"),
        (_answer({}), "LLM_EMPTY_CHANGE", "no device"),
        (_answer({"r3": "do shell rm -rf /"}), "LLM_GUARD", "guards"),
        (_answer({"r3": "ip route 198.51.100.0/24 Null0\nend\nwrite memory"}), "LLM_GUARD", "guards"),
        (_answer({"r3": "line vty\n password x"}), "LLM_GUARD", "guards"),
        (
            _answer({"r3": "ip route 198.51.100.0/24 Null0"},
                    {"prefixes_added": {"r3": ["not-a-prefix"]}, "prefixes_removed": {}, "sessions_removed": []}),
            "LLM_CHANGE_INVALID",
            "not a prefix",
        ),
    ],
)  # fmt: skip
def test_bad_answers_are_refused_with_a_reason_the_model_can_act_on(triangle, raw, code, words):
    with pytest.raises(AnswerError) as refused:
        answer_to_change(raw, INTENT, triangle)
    assert refused.value.code == code
    assert words in str(refused.value)


def test_the_schema_names_only_the_labs_routers(triangle):
    schema = answer_schema(triangle.routers())
    assert set(schema["properties"]["devices"]["properties"]) == {"r1", "r2", "r3"}
    assert schema["properties"]["devices"]["additionalProperties"] is False
    assert schema["required"] == ["devices", "expect", "rationale"]
