"""Settings read in a fresh interpreter, so each case sees only its own environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def settings_in_subprocess(env: dict[str, str], expr: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "DATABASE_URL"))}
    code = f"import aegis_site.settings as s; print({expr})"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_empty_database_url_means_sqlite_in_aegis_home(tmp_path):
    # given DATABASE_URL set but empty, as .env.example ships it
    out = settings_in_subprocess({"DATABASE_URL": "", "AEGIS_HOME": str(tmp_path)},
                                 "s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME']")
    # then the settings load, on SQLite inside AEGIS_HOME (was: UnknownSchemeError)
    assert "sqlite3" in out and str(tmp_path / "aegis.sqlite3") in out


def test_a_database_url_is_used_when_given(tmp_path):
    out = settings_in_subprocess({"DATABASE_URL": "postgres://u@db.internal:5432/site"},
                                 "s.DATABASES['default']['HOST'], s.DATABASES['default']['NAME']")
    assert out == "db.internal site"
