"""The prompt carries what an engineer would look at, from a versioned template."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from preflight.llm.prompt import (
    PROMPTS_DIR,
    PromptError,
    device_facts,
    prompt_build,
    prompt_template_load,
    prompt_text,
)
from twin.topology import load_lab

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def triangle():
    return load_lab(REPO / "labs" / "triangle")


def test_template_version_and_digest_are_those_of_the_file():
    template = prompt_template_load()
    assert template.version == "propose/1"
    assert template.sha256 == hashlib.sha256((PROMPTS_DIR / "propose-v1.txt").read_bytes()).hexdigest()


def test_a_template_without_its_version_line_is_refused(tmp_path, monkeypatch):
    (tmp_path / "bad.txt").write_text("=== system ===\nx\n=== user ===\ny\n")
    monkeypatch.setattr("preflight.llm.prompt.PROMPTS_DIR", tmp_path)
    with pytest.raises(PromptError, match="aegis-prompt"):
        prompt_template_load("bad.txt")


def test_device_facts_read_asn_addresses_neighbours_and_policy(triangle):
    facts = device_facts("r1", triangle.nodes["r1"].frr_conf, triangle.nodes["r1"].labels)
    assert facts.asn == 65001
    assert ("eth1", ["10.0.12.0/31"], "to r2") in facts.interfaces
    assert ("10.0.12.1", "65002", "r2") in facts.neighbors
    assert facts.networks == ["10.255.0.1/32"]
    assert "route-map FROM-R2" in facts.policy and "ip prefix-list PL-R2-IN" in facts.policy
    assert facts.criticality == "high"


def test_prompt_has_the_lab_the_dialect_and_the_intent(triangle):
    messages = prompt_build(
        "Advertise 198.51.100.0/24 from r3", triangle, prompt_template_load(), frr_version="8.4.4"
    )
    text = prompt_text(messages)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "FRR 8.4.4" in messages[0]["content"]
    assert "r1, r2, r3" in messages[0]["content"]
    for fact in ("AS 65001", "AS 65002", "AS 65003", "10.0.23.1/31", "r1:eth1 <-> r2:eth1", "192.0.2.0/24"):
        assert fact in text
    # only r3 is named, so only r3's running config is shown in full (the others as facts)
    assert "[r3]\n" in text and "[r1]\n" not in text
    assert "neighbor 10.0.13.0 remote-as 65001" in text
    assert "line vty" not in messages[1]["content"] and "log syslog" not in text
    assert messages[1]["content"].endswith("Advertise 198.51.100.0/24 from r3")


def test_intent_text_is_not_interpreted_as_template_markup(triangle):
    messages = prompt_build("Route $devices and ${intent} via r2", triangle, prompt_template_load())
    assert messages[1]["content"].endswith("Route $devices and ${intent} via r2")
