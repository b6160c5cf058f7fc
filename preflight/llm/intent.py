"""The guard on an operator's natural-language intent, before any of it reaches a model.

The model is never trusted, but neither is the intent: it is text a person typed or pasted,
and a prompt injection aimed at the model is still an attack on the run. Each rule below has
a code and a message that says what to change. The answer the model gives is guarded again
later, by the same `precheck` a human change goes through.
"""

from __future__ import annotations

import re
import unicodedata

INTENT_MAX_CHARS = 2000
INTENT_MIN_CHARS = 8


class IntentRejected(ValueError):
    """An intent AEGIS will not send to the model. `code` is stable; the message says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


# (code, pattern, message). Patterns are matched case-insensitively on the whole intent.
_RULES: list[tuple[str, str, str]] = [
    (
        "INTENT_OVERRIDE",
        r"\b(ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}\b(instruction|instructions|rules?|prompt|guard|guards|policy|above|previous|prior|system)\b",
        "the intent tries to change the model's instructions; describe only the network change you want",
    ),
    (
        "INTENT_OVERRIDE",
        r"\b(you are now|act as|pretend to be|new instructions|system prompt|developer mode|jailbreak|do anything now)\b",
        "the intent tries to change the model's role or instructions; describe only the network change you want",
    ),
    (
        "INTENT_OVERRIDE",
        r"(<\|?\s*/?\s*(im_start|im_end|system|assistant|user|endoftext)\s*\|?>|\[/?INST\]|^\s*#{2,}\s*(system|instruction))",
        "the intent contains chat-template markup; write plain text",
    ),
    (
        "INTENT_SECRET",
        r"\b(passwords?|passwd|secrets?|api[ _-]?keys?|tokens?|private[ _-]?keys?|credentials?|shadow|ssh[ _-]?keys?|"
        r"enable secret|snmp[ _-]?communit(y|ies)|tacacs|radius key)\b",
        "the intent asks for or about secrets; AEGIS's proposer never handles credentials — make that change by hand",
    ),
    (
        "INTENT_OUTSIDE_ROUTING",
        r"\b(shell|bash|sudo|start-shell|exec(ute)?\s+(a\s+)?command|run\s+(a\s+)?command|rm\s+-|curl|wget|"
        r"netcat|nc\s+-|python|perl|scp|sftp|ssh\s+(to|into)|reboot|shut\s*down\s+the\s+(box|host|router|system)|"
        r"write\s+(memory|mem|file|terminal)|copy\s+(running|startup)|erase\s+startup|format\s+(flash|disk)|"
        r"delete\s+(file|flash)|crontab|iptables|nftables|firmware|upgrade\s+(the\s+)?(os|image|software))\b",
        "the intent asks for something outside routing configuration (host commands, files, software); "
        "AEGIS proposes FRR routing config only",
    ),
    (
        "INTENT_URL",
        r"\b(https?|ftp|file|tftp|scp)://",
        "the intent contains a URL; AEGIS's proposer fetches nothing — paste the relevant detail as text",
    ),
]
_COMPILED = [
    (code, re.compile(pattern, re.IGNORECASE | re.MULTILINE), message) for code, pattern, message in _RULES
]


def intent_check(intent: object, *, max_chars: int = INTENT_MAX_CHARS) -> str:
    """Return the intent, normalised (NFC, stripped), or raise `IntentRejected`."""
    if not isinstance(intent, str):
        raise IntentRejected("INTENT_EMPTY", "the intent must be text describing the network change")
    text = unicodedata.normalize("NFC", intent).strip()
    if len(text) < INTENT_MIN_CHARS:
        raise IntentRejected(
            "INTENT_EMPTY",
            "the intent is empty or too short; describe the change, e.g. "
            "'advertise 10.42.0.0/24 from r3 to its BGP neighbours'",
        )
    if len(text) > max_chars:
        raise IntentRejected(
            "INTENT_TOO_LONG",
            f"the intent is {len(text)} characters; the limit is {max_chars}. Describe the change briefly, "
            "or write a change file instead",
        )
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        # Cc: control characters (escape sequences, NUL); Cf: invisible format characters such as
        # bidi overrides and zero-width spaces, which hide text from the person reviewing it.
        if (category == "Cc" and char not in "\n\t") or category == "Cf":
            raise IntentRejected(
                "INTENT_CONTROL_CHAR",
                f"the intent contains an invisible or control character U+{ord(char):04X} at position {index + 1}; "
                "remove it and type plain text",
            )
    # The rules also run on the intent's skeleton, so "іgnore previous instructions" with a
    # Cyrillic і, or fullwidth letters, is caught like the plain spelling.
    for candidate in dict.fromkeys((text, intent_skeleton(text))):
        for code, pattern, message in _COMPILED:
            match = pattern.search(candidate)
            if match:
                raise IntentRejected(code, f"{message} (found {match.group(0).strip()!r})")
    return text


# Letters of other scripts that look like Latin ones (a small subset of Unicode's confusables,
# the Cyrillic and Greek letters that pass for a-z): enough to read an intent as a person would.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁӏһԛԝАВЕКМНОРСТХІЈЅοαειкνρτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdlhqwABEKMHOPCTXIJSoaeiknptuxABEZHIKMNOPTYX",
)


def intent_skeleton(text: str) -> str:
    """`text` as it reads: compatibility forms folded (NFKC: fullwidth, ligatures) and Cyrillic or
    Greek look-alike letters mapped to the Latin letter they imitate."""
    return unicodedata.normalize("NFKC", text).translate(_CONFUSABLES)
