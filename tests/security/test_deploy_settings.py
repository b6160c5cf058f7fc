"""`manage.py check --deploy` is clean with the production settings docs/deploy.md documents, and
secrets come from the environment or files only.

Given the env block of docs/deploy.md ("Production settings"), when `check --deploy
--fail-level WARNING` runs with it, then it exits 0 with no issue; without a secret key it
names aegis.W001. The block is read from the doc, so the doc and the test cannot drift apart.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from aegis_site.settings import env_secret

REPO = Path(__file__).resolve().parents[2]


def documented_env() -> dict[str, str]:
    text = (REPO / "docs" / "deploy.md").read_text()
    block = re.search(r"<!-- deploy-env -->\s*```bash\n(.*?)```\s*<!-- /deploy-env -->", text, re.S)
    assert block, "docs/deploy.md lost its deploy-env block"
    env = {}
    for line in block[1].splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, value = line.split("=", 1)
            env[name] = value
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=120, check=False,
    )


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    env = documented_env()
    assert env["AEGIS_DEBUG"] == "false" and env["AEGIS_TLS_PROXY"] == "true"
    key_file = tmp_path / "aegis_secret_key"
    key_file.write_text(secrets.token_hex(32) + "\n")  # as deploy/make-secrets.sh writes it
    env["AEGIS_SECRET_KEY_FILE"] = str(key_file)
    proc = check_deploy(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout

    # the same without a secret: the first-try key is reported, and the check fails
    del env["AEGIS_SECRET_KEY_FILE"]
    proc = check_deploy(env)
    assert proc.returncode != 0 and "aegis.W001" in proc.stderr + proc.stdout


def test_a_secret_comes_from_its_variable_or_its_file_never_both(monkeypatch, tmp_path):
    monkeypatch.delenv("AEGIS_X", raising=False)
    monkeypatch.delenv("AEGIS_X_FILE", raising=False)
    assert env_secret("AEGIS_X", "default") == "default"
    monkeypatch.setenv("AEGIS_X", "from-env")
    assert env_secret("AEGIS_X") == "from-env"
    path = tmp_path / "x"
    path.write_text("from-file\n")
    monkeypatch.setenv("AEGIS_X_FILE", str(path))
    with pytest.raises(ImproperlyConfigured, match="AEGIS_X or AEGIS_X_FILE, not both"):
        env_secret("AEGIS_X")
    monkeypatch.delenv("AEGIS_X")
    assert env_secret("AEGIS_X") == "from-file"
    monkeypatch.setenv("AEGIS_X_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="AEGIS_X_FILE="):
        env_secret("AEGIS_X")


def test_every_setting_read_from_the_environment_is_in_env_example():
    """Secrets included: a variable the settings read must be named in .env.example."""
    settings_text = (REPO / "aegis_site" / "settings.py").read_text()
    read = set(re.findall(r'env_(?:str|bool|int|list|path|secret)\(\s*"([A-Z0-9_]+)"', settings_text))
    secrets_read = set(re.findall(r'env_secret\(\s*"([A-Z0-9_]+)"', settings_text))
    read |= {f"{name}_FILE" for name in secrets_read}
    example = set(re.findall(r"^([A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    assert not read - example, f"missing from .env.example: {sorted(read - example)}"
