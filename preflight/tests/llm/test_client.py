"""The client against real local HTTP servers: errors say what to check, retries are recorded.

`scripted_server` is a stand-in for an LLM that answers from a script, so the retry and
error paths are exact; the real model is exercised in test_real_model.py.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from preflight.llm.client import LLMError, chat_complete, chat_url
from preflight.llm.config import LLMConfig, LLMConfigError, api_key_read, llm_config_from_settings
from preflight.llm.propose import propose_change
from twin.topology import load_lab

REPO = Path(__file__).resolve().parents[3]
GOOD = {
    "devices": {"r3": "ip route 198.51.100.0/24 Null0"},
    "expect": {"prefixes_added": {"r3": ["198.51.100.0/24"]}, "prefixes_removed": {}, "sessions_removed": []},
    "rationale": "discard route",
}


@pytest.fixture(scope="module")
def triangle():
    return load_lab(REPO / "labs" / "triangle")


@contextmanager
def scripted_server(
    replies: list[tuple[int, object]], delay_s: float = 0.0
) -> Iterator[tuple[str, list[dict]]]:
    """An HTTP server on loopback answering POSTs from `replies` in order; yields (base URL, requests seen)."""
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            seen.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            time.sleep(delay_s)
            status, reply = replies[min(len(seen), len(replies)) - 1]
            body = (reply if isinstance(reply, str) else json.dumps(reply)).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (the timeout test): nothing to answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # a hung handler must not hold up the test at close
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def completion(content: str, finish: str = "stop") -> dict:
    return {
        "model": "scripted",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://10.0.0.5:8000/v1", "http://10.0.0.5:8000/v1/chat/completions"),
        ("http://10.0.0.5:8000/v1/", "http://10.0.0.5:8000/v1/chat/completions"),
        ("http://127.0.0.1:11434", "http://127.0.0.1:11434/v1/chat/completions"),
        ("http://h/v1/chat/completions", "http://h/v1/chat/completions"),
    ],
)
def test_chat_url(base, url):
    assert chat_url(base) == url


def test_request_carries_schema_sampling_and_api_key():
    with scripted_server([(200, completion("{}"))]) as (url, seen):
        answer = chat_complete(
            LLMConfig(url=url, model="qwen3", api_key="k-123", seed=7),
            url,
            [{"role": "user", "content": "hi"}],
            {"type": "object"},
        )
    body = seen[0]["body"]
    assert seen[0]["path"] == "/v1/chat/completions"
    assert seen[0]["headers"]["Authorization"] == "Bearer k-123"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert (body["model"], body["seed"], body["temperature"]) == ("qwen3", 7, 0.0)
    assert answer.usage == {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


@pytest.mark.parametrize(
    ("status", "reply", "words"),
    [
        (401, {"error": "bad key"}, "AEGIS_LLM_API_KEY"),
        (404, {"error": "no such model"}, "AEGIS_LLM_MODEL"),
        (500, {"error": "boom"}, "HTTP 500"),
        (200, "<html>proxy login</html>", "did not answer with an OpenAI chat completion"),
        (200, {"choices": []}, "did not answer with an OpenAI chat completion"),
    ],
)
def test_server_errors_say_what_to_check(status, reply, words):
    with scripted_server([(status, reply)]) as (url, _), pytest.raises(LLMError, match=words):
        chat_complete(LLMConfig(url=url), url, [{"role": "user", "content": "hi"}], {})


def test_a_hung_server_times_out_with_a_clear_message():
    with scripted_server([(200, completion("{}"))], delay_s=2.0) as (url, _):
        with pytest.raises(LLMError, match="did not answer within"):
            chat_complete(LLMConfig(url=url, timeout_s=0.3), url, [{"role": "user", "content": "hi"}], {})


def test_a_server_that_is_down_blocks_without_retry(triangle):
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proposal = propose_change(
        "advertise 198.51.100.0/24 from r3", triangle, config=LLMConfig(url=f"http://127.0.0.1:{port}/v1")
    )
    assert proposal.change is None
    assert proposal.error_code == "LLM_UNAVAILABLE" and "is the server running" in proposal.error
    assert len(proposal.attempts) == 1
    assert proposal.reason() == {
        "code": "LLM_UNAVAILABLE",
        "message": f"LLM proposal unusable: {proposal.error}",
    }


def test_a_bad_answer_is_retried_once_with_the_error_fed_back(triangle):
    # given a model whose first answer names a device the lab does not have
    bad = json.dumps({**GOOD, "devices": {"spine9": "ip route 198.51.100.0/24 Null0"}})
    with scripted_server([(200, completion(bad)), (200, completion(json.dumps(GOOD)))]) as (url, seen):
        proposal = propose_change("advertise 198.51.100.0/24 from r3", triangle, config=LLMConfig(url=url))
    # then the second request carries the first answer and the reason it was refused
    assert proposal.error is None and proposal.change["devices"] == {"r3": "ip route 198.51.100.0/24 Null0\n"}
    second = seen[1]["body"]["messages"]
    assert second[-2] == {"role": "assistant", "content": bad}
    assert "spine9" in second[-1]["content"] and "rejected" in second[-1]["content"]
    assert [a.get("error_code") for a in proposal.attempts] == ["LLM_UNKNOWN_DEVICE", None]
    assert proposal.provenance["raw_answers"] == [bad, json.dumps(GOOD)]
    assert proposal.provenance["tokens"] == {"prompt": 200, "completion": 40, "total": 240}


def test_two_bad_answers_end_in_an_error_with_both_recorded(triangle):
    with scripted_server([(200, completion("not json")), (200, completion('{"devices": 3}'))]) as (url, seen):
        proposal = propose_change("advertise 198.51.100.0/24 from r3", triangle, config=LLMConfig(url=url))
    assert len(seen) == 2
    assert proposal.change is None
    assert proposal.error_code == "LLM_SCHEMA"
    assert [a["error_code"] for a in proposal.attempts] == ["LLM_NOT_JSON", "LLM_SCHEMA"]
    assert proposal.provenance["raw"] == '{"devices": 3}'


def test_nothing_configured_is_a_config_error(settings, triangle):
    settings.AEGIS_LLM_URL = ""
    settings.AEGIS_LLM_GGUF = ""
    with pytest.raises(LLMConfigError, match="AEGIS_LLM_URL"):
        propose_change("advertise 198.51.100.0/24 from r3", triangle, config=llm_config_from_settings(settings))


def test_a_missing_gguf_is_a_config_error(triangle, tmp_path):
    with pytest.raises(LLMConfigError, match="does not exist"):
        propose_change(
            "advertise 198.51.100.0/24 from r3", triangle, config=LLMConfig(gguf=str(tmp_path / "nope.gguf"))
        )


def test_api_key_from_file(settings, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("k-from-file\n")
    settings.AEGIS_LLM_API_KEY = ""
    settings.AEGIS_LLM_API_KEY_FILE = str(key_file)
    config = llm_config_from_settings(settings)
    assert config.api_key == "k-from-file"
    assert "k-from-file" not in repr(config) and "api_key" not in config.public()
    with pytest.raises(LLMConfigError, match="cannot read"):
        api_key_read("", str(tmp_path / "missing"))


def test_weights_digest_and_timeout_from_settings(settings):
    settings.AEGIS_LLM_URL = "http://10.0.0.5:8000/v1"
    settings.AEGIS_LLM_WEIGHTS_SHA256 = "AB" * 32
    settings.AEGIS_LLM_TIMEOUT_S = "600"
    config = llm_config_from_settings(settings)
    assert (config.url, config.weights_sha256, config.timeout_s) == (
        "http://10.0.0.5:8000/v1",
        "ab" * 32,
        600.0,
    )
    settings.AEGIS_LLM_TIMEOUT_S = "soon"
    with pytest.raises(LLMConfigError, match="AEGIS_LLM_TIMEOUT_S"):
        llm_config_from_settings(settings)


def test_a_botched_proposal_is_a_blocked_result_document_with_the_same_keys(triangle):
    # given a model that answers garbage twice
    from preflight.core.pipeline import run_preflight
    from preflight.llm.run import preflight_intent

    with scripted_server([(200, completion("no")), (200, completion("still no"))]) as (url, _):
        result = preflight_intent(
            REPO / "labs" / "triangle", "advertise 198.51.100.0/24 from r3", config=LLMConfig(url=url),
            topology=triangle, backend="simulator",
        )  # fmt: skip
    # then the run is blocked with the reason, nothing spawned, and the document reads like any other
    assert result["verdict"] == "blocked"
    assert result["reasons"] == [
        {"code": "LLM_NOT_JSON", "message": "LLM proposal unusable: " + result["llm"]["error"]}
    ]
    assert result["twin"]["spawned"] is False and result["change"]["source"] == "llm"
    assert [c["address"] for c in result["egress"]["contacted"]] == ["127.0.0.1"]
    # every key docs/result-format.md promises (the pipeline may add more; readers must not break)
    documented = {"format", "run_id", "verdict", "reasons", "risk", "change", "lab", "static_findings", "twin",
                  "apply", "diff", "invariants", "rollback", "timings", "snapshots", "llm", "egress", "versions",
                  "started_at", "finished_at"}  # fmt: skip
    assert documented <= set(result)
    normal = run_preflight(
        REPO / "labs" / "triangle",
        {"title": "t", "devices": {"r3": "ip route 198.51.100.0/24 Null0"}, "source": "api"},
        backend="simulator",
        topology=triangle,
    )
    assert documented <= set(normal) and result["format"] == normal["format"]
    json.dumps(result)  # plain JSON, ready to seal
