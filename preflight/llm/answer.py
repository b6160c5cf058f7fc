"""The model's answer: the JSON schema it is asked for, and the checks it must pass.

The schema is sent as the OpenAI `response_format`, so a server that supports constrained
decoding (llama.cpp, vLLM, SGLang) cannot emit anything else. A server that ignores it can,
so every answer is parsed and checked here again, then turned into a change dict by the
pipeline's own `change_from_parts` and checked by its `precheck` guards: an answer is held to
exactly the rules a human's change is held to.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from preflight.core.change import ChangeError, change_from_parts
from preflight.core.guards import GuardRejection, precheck
from twin.base import Topology

# A proposal is a handful of lines; these bound what a runaway model can make us parse.
MAX_CONFIG_CHARS = 4000
MAX_RATIONALE_CHARS = 1000
# Small models loop ("10.0.0.0/24", "10.0.0.0/24", ...); a bound lets constrained decoding end the list.
MAX_EXPECT_ITEMS = 16
TITLE_INTENT_CHARS = 80


class AnswerError(ValueError):
    """The model's answer is unusable. `code` is stable; the message is fed back on retry."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def answer_schema(routers: list[str]) -> dict[str, Any]:
    """JSON schema of an answer for a lab with these routers."""
    prefixes = {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_EXPECT_ITEMS},
    }
    return {
        "type": "object",
        "properties": {
            "devices": {
                "type": "object",
                # Device names are the lab's own routers: constrained decoding cannot invent one.
                "properties": {name: {"type": "string", "maxLength": MAX_CONFIG_CHARS} for name in routers},
                "additionalProperties": False,
            },
            "expect": {
                "type": "object",
                "properties": {
                    "prefixes_added": prefixes,
                    "prefixes_removed": prefixes,
                    "sessions_removed": {
                        "type": "array",
                        "maxItems": MAX_EXPECT_ITEMS,
                        "items": {
                            "type": "object",
                            "properties": {"node": {"type": "string"}, "peer": {"type": "string"}},
                            "required": ["node", "peer"],
                            "additionalProperties": False,
                        },
                    },
                },
                "required": ["prefixes_added", "prefixes_removed", "sessions_removed"],
                "additionalProperties": False,
            },
            "rationale": {"type": "string", "maxLength": MAX_RATIONALE_CHARS},
        },
        "required": ["devices", "expect", "rationale"],
        "additionalProperties": False,
    }


def _json_parse(raw: str) -> Any:
    text = raw.strip()
    # Some servers wrap JSON in a markdown fence even when asked not to; the fence carries nothing.
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    if fence:
        text = fence.group(1)
    if not text:
        raise AnswerError("LLM_EMPTY", "the answer was empty; answer with one JSON object")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerError(
            "LLM_NOT_JSON", f"the answer is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None


def _schema_check(data: Any, routers: list[str]) -> None:
    if isinstance(data, dict) and isinstance(data.get("devices"), dict):
        unknown = sorted(str(name) for name in data["devices"] if name not in routers)
        if unknown:
            raise AnswerError(
                "LLM_UNKNOWN_DEVICE",
                f"the answer names device(s) {', '.join(unknown)} that are not in the lab; "
                f"use only: {', '.join(routers)}",
            )
    validator = jsonschema.Draft202012Validator(answer_schema(routers))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise AnswerError("LLM_SCHEMA", f"the answer does not match the schema at {where}: {first.message}")


def answer_to_change(raw: str, intent: str, topology: Topology) -> dict[str, Any]:
    """Turn one raw answer into a validated change dict with source "llm", or raise `AnswerError`."""
    routers = topology.routers()
    data = _json_parse(raw)
    _schema_check(data, routers)
    devices = {name: text for name, text in data["devices"].items() if text.strip()}
    if not devices:
        raise AnswerError(
            "LLM_EMPTY_CHANGE", "the answer changes no device; give config lines for at least one router"
        )
    title = "LLM proposal: " + " ".join(intent.split())[:TITLE_INTENT_CHARS]
    description = f"Operator's intent: {intent}\n\nModel's rationale: {data['rationale'].strip()}"
    try:
        change = change_from_parts(
            title=title,
            description=description,
            devices=devices,
            expect=data["expect"],
            source="llm",
            topology=topology,
        )
    except ChangeError as exc:
        raise AnswerError("LLM_CHANGE_INVALID", f"the answer is not a valid change: {exc}") from None
    try:
        precheck(change, topology)
    except GuardRejection as exc:
        raise AnswerError("LLM_GUARD", f"the answer was refused by the guards: {exc}") from None
    except ChangeError as exc:
        raise AnswerError("LLM_CHANGE_INVALID", f"the answer is not a valid change: {exc}") from None
    return change
