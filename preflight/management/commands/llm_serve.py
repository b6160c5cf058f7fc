"""`manage.py llm_serve --gguf PATH [--listen 127.0.0.1:PORT]`: the embedded LLM server in the foreground.

For a site without an LLM server: llama.cpp (through xllamacpp) serves the GGUF file over the
OpenAI-compatible API; point AEGIS_LLM_URL at the printed URL. Stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from preflight.llm.config import LLMConfigError, api_key_read
from preflight.llm.server import EmbeddedServer, EmbeddedServerError, gguf_check, gguf_sha256, listen_parse


class Command(BaseCommand):
    help = "Serve a GGUF model with the embedded llama.cpp server (OpenAI-compatible API)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--gguf",
            default=settings.AEGIS_LLM_GGUF or None,
            help="GGUF weights file (default: AEGIS_LLM_GGUF)",
        )
        parser.add_argument(
            "--listen",
            default="127.0.0.1:8081",
            help="HOST:PORT to listen on (default 127.0.0.1:8081; port 0 picks a free one)",
        )
        parser.add_argument("--threads", type=int, default=2, help="CPU threads for inference (default 2)")
        parser.add_argument(
            "--context", type=int, default=4096, help="context window in tokens (default 4096)"
        )
        parser.add_argument(
            "--model-alias", default="", help="model name clients ask for (default: file stem)"
        )
        parser.add_argument(
            "--api-key-file",
            default=settings.AEGIS_LLM_API_KEY_FILE or "",
            help="require this API key from clients (default: AEGIS_LLM_API_KEY[_FILE])",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["gguf"]:
            raise CommandError("name a GGUF file: --gguf PATH (or set AEGIS_LLM_GGUF)")
        try:
            gguf = gguf_check(options["gguf"])
            host, port = listen_parse(options["listen"])
            api_key = api_key_read(settings.AEGIS_LLM_API_KEY, options["api_key_file"])
        except (EmbeddedServerError, LLMConfigError) as exc:
            raise CommandError(str(exc)) from None
        if options["threads"] < 1 or options["context"] < 256:
            raise CommandError("--threads must be at least 1 and --context at least 256")
        if not ipaddress.ip_address(host).is_loopback and not api_key:
            self.stderr.write(
                f"warning: listening on {host} without an API key; anyone who reaches it can use the model "
                "(set AEGIS_LLM_API_KEY or --api-key-file)"
            )
        self.stdout.write(f"llm_serve: hashing {gguf.name} ...")
        self.stdout.flush()
        digest = gguf_sha256(gguf)
        server = EmbeddedServer(
            Path(gguf),
            host=host,
            port=port,
            threads=options["threads"],
            context_tokens=options["context"],
            model_alias=options["model_alias"],
            api_key=api_key,
        )
        try:
            url = server.start()
        except EmbeddedServerError as exc:
            raise CommandError(str(exc)) from None
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        # One line a script can parse: the URL to put in AEGIS_LLM_URL and the weights digest.
        self.stdout.write(
            f"llm_serve: ready url={url} model={options['model_alias'] or gguf.stem} sha256={digest}"
        )
        self.stdout.flush()
        sys.stdout.flush()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            server.stop()
            self.stdout.write("llm_serve: stopped")
