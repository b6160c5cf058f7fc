"""Where the LLM is and how it is asked: one plain dataclass, read from settings by a thin adapter."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class LLMConfigError(ValueError):
    """The LLM settings cannot work; the message names the setting to fix."""


@dataclass
class LLMConfig:
    # Base URL of an OpenAI-compatible server, e.g. http://10.0.0.5:8000/v1 . Empty with a
    # GGUF set: AEGIS starts the embedded llama.cpp server itself.
    url: str = ""
    model: str = "qwen3"
    api_key: str = field(default="", repr=False)
    gguf: str = ""  # a GGUF file for the embedded server
    # Sampling: temperature 0 and a fixed seed make one server give the same answer twice.
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 42
    max_tokens: int = 512
    connect_timeout_s: float = 5.0
    # A CPU-only server can take a while on a long prompt; a hung one must not hang a run.
    timeout_s: float = 180.0
    retries: int = 1  # one retry with the error fed back, as the issue allows
    # Known digest of the served weights (the embedded server fills it from the GGUF file).
    weights_sha256: str = ""
    # Embedded server: threads and context window.
    threads: int = 2
    context_tokens: int = 4096
    # Server-specific request fields added to every chat request (e.g. {"top_k": 1} for llama.cpp).
    extra: dict[str, Any] = field(default_factory=dict)

    def sampling(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }

    def public(self) -> dict[str, Any]:
        """The config without the API key (for provenance and logs)."""
        data = asdict(self)
        data.pop("api_key")
        data["api_key_set"] = bool(self.api_key)
        return data


def _setting(settings: Any, name: str, default: str) -> str:
    value = getattr(settings, name, default)
    return default if value is None else str(value)


def api_key_read(key: str, key_file: str) -> str:
    """The API key from the setting, or from the first line of the named file."""
    if key:
        return key.strip()
    if not key_file:
        return ""
    path = Path(key_file).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip().splitlines()[0].strip() if path.stat().st_size else ""
    except OSError as exc:
        raise LLMConfigError(f"AEGIS_LLM_API_KEY_FILE: cannot read {path}: {exc.strerror}") from None


def llm_config_from_settings(settings: Any, **overrides: Any) -> LLMConfig:
    """Build an `LLMConfig` from a settings object (the Django shell passes `django.conf.settings`).

    Only the AEGIS_LLM_* attributes are read; a missing one takes the default of
    `aegis_site/settings.py`. The core never looks settings up by itself.
    """
    config = LLMConfig(
        url=_setting(settings, "AEGIS_LLM_URL", "").strip(),
        model=_setting(settings, "AEGIS_LLM_MODEL", "qwen3").strip() or "qwen3",
        api_key=api_key_read(
            _setting(settings, "AEGIS_LLM_API_KEY", ""), _setting(settings, "AEGIS_LLM_API_KEY_FILE", "")
        ),
        gguf=_setting(settings, "AEGIS_LLM_GGUF", "").strip(),
        # The sha256 `llm_serve` prints, for a site that runs it (or any server) as a service.
        weights_sha256=_setting(settings, "AEGIS_LLM_WEIGHTS_SHA256", "").strip().lower(),
    )
    for name, attr, kind in (
        ("AEGIS_LLM_TIMEOUT_S", "timeout_s", float),
        ("AEGIS_LLM_MAX_TOKENS", "max_tokens", int),
    ):
        raw = _setting(settings, name, "").strip()
        if raw:
            try:
                value = kind(raw)
            except ValueError:
                raise LLMConfigError(f"{name}: {raw!r} is not a {kind.__name__}") from None
            if value <= 0:
                raise LLMConfigError(f"{name}: must be positive, not {raw}")
            setattr(config, attr, value)
    for name, value in overrides.items():
        if not hasattr(config, name):
            raise LLMConfigError(f"unknown LLM setting {name!r}")
        setattr(config, name, value)
    return config
