"""A small client for the OpenAI-compatible chat-completions API (vLLM, Ollama, SGLang, llama.cpp).

Every request goes through the egress policy (`perimeter.egress`), with timeouts, and every
failure becomes an `LLMError` whose message says what to check. No SDK: the API surface we
use is one POST, and an SDK would bring its own HTTP stack around the egress check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from perimeter.egress import EgressRefused, egress_check, egress_client, url_host_port
from preflight.llm.config import LLMConfig, LLMConfigError

EGRESS_PURPOSE = "llm"


class LLMError(RuntimeError):
    """The LLM server could not be asked or gave no usable completion. The message says what to check."""


@dataclass
class ChatAnswer:
    content: str
    finish_reason: str | None
    served_model: str | None
    usage: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, Any] = field(default_factory=dict)


def chat_url(base_url: str) -> str:
    """The chat-completions URL for a base URL such as http://host:8000/v1 or http://host:11434."""
    base = base_url.strip().rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def llm_endpoint_check(url: str) -> str:
    """Check an LLM URL's shape and the egress policy before anything runs; return the address.

    Raises `LLMConfigError` for a malformed URL and `EgressRefused` for a destination outside
    the perimeter (both input errors: the CLI exits 2).
    """
    try:
        host, port = url_host_port(url)
    except ValueError as exc:
        raise LLMConfigError(f"AEGIS_LLM_URL: {exc}") from None
    return egress_check(host, port, EGRESS_PURPOSE)


def chat_complete(
    config: LLMConfig,
    url: str,
    messages: list[dict[str, str]],
    schema: dict[str, Any] | None,
    *,
    extra_body: dict[str, Any] | None = None,
) -> ChatAnswer:
    """POST one chat completion with a JSON-schema response format; return its text and usage.

    `extra_body` adds server-specific fields (e.g. llama.cpp's `grammar`, with `schema=None`).
    """
    body: dict[str, Any] = {
        "model": config.model,
        "messages": messages,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "seed": config.seed,
        "max_tokens": config.max_tokens,
        "stream": False,
        **(config.extra or {}),
        **(extra_body or {}),
    }
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "aegis_change", "strict": True, "schema": schema},
        }
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    endpoint = chat_url(url)
    timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
    started = time.monotonic()
    try:
        with egress_client(EGRESS_PURPOSE, timeout=timeout) as client:
            response = client.post(endpoint, json=body, headers=headers)
    except EgressRefused:
        raise
    except httpx.TimeoutException:
        raise LLMError(
            f"the LLM at {endpoint} did not answer within {config.timeout_s:.0f} s; "
            "check the server's load or raise the timeout"
        ) from None
    except httpx.ConnectError as exc:
        raise LLMError(
            f"cannot connect to the LLM at {endpoint} ({exc}); is the server running? (AEGIS_LLM_URL)"
        ) from None
    except httpx.HTTPError as exc:
        raise LLMError(f"the request to the LLM at {endpoint} failed: {exc}") from None
    seconds = time.monotonic() - started
    if response.status_code in (401, 403):
        raise LLMError(
            f"the LLM at {endpoint} refused the API key (HTTP {response.status_code}); "
            "check AEGIS_LLM_API_KEY or AEGIS_LLM_API_KEY_FILE"
        )
    if response.status_code == 404:
        raise LLMError(
            f"the LLM at {endpoint} has no chat-completions endpoint or no model {config.model!r} "
            f"(HTTP 404); check AEGIS_LLM_URL (usually ends in /v1) and AEGIS_LLM_MODEL"
        )
    if response.status_code >= 400:
        raise LLMError(f"the LLM at {endpoint} answered HTTP {response.status_code}: {response.text[:300]}")
    try:
        payload = response.json()
        choice = payload["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(
            f"the LLM at {endpoint} did not answer with an OpenAI chat completion: {response.text[:300]}"
        ) from None
    usage = payload.get("usage") or {}
    return ChatAnswer(
        content=content if isinstance(content, str) else "",
        finish_reason=choice.get("finish_reason"),
        served_model=payload.get("model"),
        usage={k: int(v) for k, v in usage.items() if isinstance(v, int | float) and not isinstance(v, bool)},
        seconds=seconds,
        timings=payload.get("timings") or {},
    )
