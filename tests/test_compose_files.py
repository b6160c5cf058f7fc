"""The compose files are valid Compose Specification (what Compose v2 reads) and Compose v1.

Fast, no Docker daemon: the files, and the air-gapped merge of both, are validated against the
Compose Specification JSON schema vendored in deploy/compose-spec/ (this machine has only
Debian's Compose v1; v2 validates against the same schema); and Debian's `docker-compose`
(v1.29) renders the merged configuration when it is installed. The running stack is
tests/test_airgap.py.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SCHEMA = json.loads((DEPLOY / "compose-spec" / "compose_spec.json").read_text())


def errors(doc: dict) -> list[str]:
    # The schema says draft 2019-09; its keywords are all draft-07 ones (jsonschema has both).
    validator = jsonschema.Draft201909Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.airgap.yml"])
def test_compose_file_is_valid_compose_spec(name: str) -> None:
    assert errors(load(name)) == []


def test_schema_catches_what_compose_v2_refuses() -> None:
    # The check can fail: typical mistakes in these files are refused by the vendored schema.
    base = load("docker-compose.yml")
    wrong = copy.deepcopy(base)
    wrong["services"]["worker"]["cap_ad"] = ["NET_ADMIN"]
    assert any("cap_ad" in e for e in errors(wrong))
    wrong = copy.deepcopy(base)
    wrong["services"]["web"]["depends_on"]["db"] = {"condition": "service_healthy", "restart": "yes"}
    assert errors(wrong)
    wrong = load("docker-compose.airgap.yml")
    wrong["networks"]["aegis"]["internal"] = "yes"
    assert any("internal" in e for e in errors(wrong))


def test_airgap_override_closes_the_network() -> None:
    airgap = load("docker-compose.airgap.yml")
    base = load("docker-compose.yml")
    assert airgap["networks"]["aegis"]["internal"] is True
    assert set(airgap["services"]) == set(base["services"])
    for name, svc in base["services"].items():
        assert svc["networks"] == ["aegis"], f"{name} joins a network the override does not close"
        assert airgap["services"][name]["environment"]["AEGIS_AIRGAP"] == "1"
    # Only the web joins `edge` (Docker publishes no port of a container on internal networks
    # only): no masquerading on it, its published ports on the loopback.
    assert {n: s.get("networks") for n, s in airgap["services"].items() if s.get("networks")} == {
        "web": ["aegis", "edge"]}
    edge = airgap["networks"]["edge"]
    assert edge["driver_opts"] == {"com.docker.network.bridge.enable_ip_masquerade": "false",
                                   "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"}
    # Published ports: only the web's, and on the loopback unless the site says otherwise.
    published = {n: s.get("ports") for n, s in base["services"].items() if s.get("ports")}
    assert list(published) == ["web"]
    assert published["web"][0].startswith("${AEGIS_WEB_BIND:-127.0.0.1}:")


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose (v1) is not installed")
def test_docker_compose_v1_renders_the_airgapped_stack(tmp_path: Path) -> None:
    for name in ("docker-compose.yml", "docker-compose.airgap.yml"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    (tmp_path / "secrets").mkdir()
    for name in ("aegis_secret_key", "db_password", "redis_password", "key_encryption_key"):
        (tmp_path / "secrets" / name).write_text("x" * 64)
    run = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "-f", "docker-compose.airgap.yml", "config"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "COMPOSE_PROJECT_NAME": "aegis", "AEGIS_TAG": "t1"},
    )
    assert run.returncode == 0, run.stderr
    merged = yaml.safe_load(run.stdout)
    assert errors(merged) == []
    assert merged["networks"]["aegis"]["internal"] is True
    assert set(merged["services"]["web"]["networks"]) == {"aegis", "edge"}
    assert all(set(merged["services"][s]["networks"]) == {"aegis"} for s in ("db", "redis", "worker"))
    assert merged["services"]["web"]["ports"] == [
        {"host_ip": "127.0.0.1", "mode": "ingress", "protocol": "tcp", "published": 8088, "target": 8088}
    ] or merged["services"]["web"]["ports"] == ["127.0.0.1:8088:8088/tcp"], merged["services"]["web"]["ports"]
    assert {s["image"] for s in merged["services"].values()} == {"aegis:t1"}
    assert set(merged["services"]["worker"]["cap_add"]) == {"NET_ADMIN", "SYS_ADMIN"}
    assert set(merged["services"]["web"]["cap_add"]) == {"NET_ADMIN"}  # dropped before daphne starts
    # The override's environment is merged into, not in place of, the base file's.
    assert merged["services"]["web"]["environment"]["AEGIS_AIRGAP"] == "1"
    assert merged["services"]["web"]["environment"]["AEGIS_TWIN_BACKEND"] == "netns"
