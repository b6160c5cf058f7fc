"""`propose_change`: an operator's intent in, an untrusted change dict (source "llm") out.

    intent --intent_check--> prompt (lab facts + configs + intent) --LLM, JSON schema-->
    answer --answer_to_change (schema, devices, change_from_parts, precheck)--> change
                         \\-- on a bad answer: one retry with the error fed back --/

Input errors raise before any request is sent: `IntentRejected`, `LLMConfigError` (nothing
configured, bad URL, missing GGUF) and `EgressRefused` (an LLM outside the perimeter). Every
later failure (server down, timeout, a bad answer twice) is `Proposal.error`, which the
pipeline turns into a `blocked` verdict. Provenance is complete either way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from preflight.llm.answer import AnswerError, answer_schema, answer_to_change
from preflight.llm.client import LLMError, chat_complete, llm_endpoint_check
from preflight.llm.config import LLMConfig, LLMConfigError
from preflight.llm.intent import IntentRejected, intent_check
from preflight.llm.prompt import PROMPT_TEMPLATE, prompt_build, prompt_template_load, prompt_text
from twin.base import Topology

__all__ = ["IntentRejected", "LLMConfigError", "Proposal", "propose_change"]


@dataclass
class Proposal:
    change: dict[str, Any] | None
    provenance: dict[str, Any]
    error: str | None
    # Stable code of the error for the verdict's reasons, e.g. LLM_NOT_JSON, LLM_UNAVAILABLE.
    error_code: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def reason(self) -> dict[str, str] | None:
        """The error as a verdict reason `{code, message}`, or None when the proposal is usable."""
        if self.error is None:
            return None
        return {"code": self.error_code or "LLM_FAILED", "message": f"LLM proposal unusable: {self.error}"}


def _frr_version(topology: Topology) -> str:
    for name in topology.routers():
        image = topology.nodes[name].image or ""
        match = re.search(r":v?(\d+\.\d+(?:\.\d+)?)$", image)
        if match:
            return match.group(1)
    return ""


def _endpoint(config: LLMConfig) -> tuple[str, dict[str, Any]]:
    """The base URL to ask and what is known about the server behind it."""
    if config.url:
        llm_endpoint_check(config.url)
        return config.url, {"server": "external", "weights_sha256": config.weights_sha256 or None}
    if config.gguf:
        from preflight.llm.server import EmbeddedServerError, embedded_url

        try:
            url, facts = embedded_url(
                config.gguf, threads=config.threads, context_tokens=config.context_tokens
            )
        except EmbeddedServerError as exc:
            raise LLMConfigError(str(exc)) from None
        llm_endpoint_check(url)
        return url, facts
    raise LLMConfigError(
        "no LLM is configured: set AEGIS_LLM_URL to an OpenAI-compatible server inside the perimeter "
        "(e.g. http://10.0.0.5:8000/v1), or AEGIS_LLM_GGUF to a GGUF file for the embedded server"
    )


def _feedback(error: AnswerError) -> str:
    return (
        f"Your answer was rejected: {error}. Answer again with one JSON object with the keys "
        "devices, expect and rationale, using only the routers of this lab and only routing configuration."
    )


def propose_change(intent: str, topology: Topology, *, config: LLMConfig) -> Proposal:
    """Ask the LLM `config` names for a change that does what `intent` says in `topology`'s lab."""
    clean_intent = intent_check(intent)
    url, server = _endpoint(config)
    template = prompt_template_load(PROMPT_TEMPLATE)
    messages = prompt_build(clean_intent, topology, template, frr_version=_frr_version(topology))
    schema = answer_schema(topology.routers())
    provenance: dict[str, Any] = {
        "endpoint": url,
        "model": config.model,
        "served_model": None,
        **server,
        "sampling": config.sampling(),
        "seed": config.seed,
        "response_format": "json_schema",
        "prompt_template": template.provenance(),
        "prompt": prompt_text(messages),
        "intent": clean_intent,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    attempts: list[dict[str, Any]] = []
    change: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    started = time.monotonic()
    for attempt in range(1, 2 + max(0, config.retries)):
        record: dict[str, Any] = {"attempt": attempt}
        attempts.append(record)
        try:
            answer = chat_complete(config, url, messages, schema)
        except LLMError as exc:
            # The server itself failed: a retry would only double the wait. Recorded, then blocked.
            record.update({"error": str(exc), "error_code": "LLM_UNAVAILABLE"})
            error, error_code = str(exc), "LLM_UNAVAILABLE"
            break
        provenance["served_model"] = answer.served_model
        record.update(
            {
                "raw": answer.content,
                "finish_reason": answer.finish_reason,
                "usage": answer.usage,
                "seconds": round(answer.seconds, 3),
                # llama.cpp reports prompt/generation speed; other servers send nothing here.
                "server_timings": answer.timings,
            }
        )
        try:
            change = answer_to_change(answer.content, clean_intent, topology)
        except AnswerError as exc:
            message = str(exc)
            if answer.finish_reason == "length":
                message += f" (the answer was cut off at max_tokens={config.max_tokens})"
            record.update({"error": message, "error_code": exc.code})
            error, error_code = message, exc.code
            messages = [
                *messages,
                {"role": "assistant", "content": answer.content},
                {"role": "user", "content": _feedback(exc)},
            ]
            record["feedback"] = messages[-1]["content"]
            continue
        error, error_code = None, None
        break
    provenance.update(
        {
            "attempts": attempts,
            "raw": attempts[-1].get("raw") if attempts else None,
            "raw_answers": [a["raw"] for a in attempts if "raw" in a],
            "messages": messages,
            "tokens": {
                key: sum(a.get("usage", {}).get(f"{key}_tokens", 0) for a in attempts)
                for key in ("prompt", "completion", "total")
            },
            "seconds": round(time.monotonic() - started, 3),
            "error": error,
            "error_code": error_code,
        }
    )
    return Proposal(
        change=change, provenance=provenance, error=error, error_code=error_code, attempts=attempts
    )
