"""`manage.py llm_serve` refuses bad input with a message that says what to fix (no model load)."""

from __future__ import annotations

import socket

import pytest
from django.core.management import CommandError, call_command


@pytest.fixture
def fake_gguf(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 60)  # right magic, no model: never loaded by these tests
    return path


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    text = tmp_path / "weights.bin"
    text.write_text("not a model")
    with pytest.raises(CommandError, match="is not a GGUF file"):
        call_command("llm_serve", gguf=str(text))


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("llm_serve", gguf=str(tmp_path / "missing.gguf"))


def test_no_file_named_is_refused(settings):
    settings.AEGIS_LLM_GGUF = ""
    with pytest.raises(CommandError, match="--gguf PATH"):
        call_command("llm_serve", gguf=None)


@pytest.mark.parametrize("listen", ["foo", "localhost:8081", "127.0.0.1:", "127.0.0.1:99999"])
def test_a_bad_listen_address_is_refused(fake_gguf, listen):
    with pytest.raises(CommandError, match="--listen|port out of range"):
        call_command("llm_serve", gguf=str(fake_gguf), listen=listen)


def test_a_busy_port_is_refused_before_the_model_loads(fake_gguf):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{port}"):
            call_command("llm_serve", gguf=str(fake_gguf), listen=f"127.0.0.1:{port}")
