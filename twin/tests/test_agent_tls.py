"""Mutual TLS between the `http` backend and the twin agent (optional; the bearer token stays).

Fast: the agent serves the seeded simulator on loopback, over real TLS with certificates made
here (a site CA, the agent's certificate for 127.0.0.1, a caller's client certificate, and a
stranger CA that signs a look-alike client certificate).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from preflight.core.change import change_load
from preflight.core.pipeline import run_preflight
from twin import get_backend
from twin.agent import tls_server_context
from twin.remote import AgentError, RemoteBackend
from twin.simulator import SimulatorBackend
from twin.tests.agent_helpers import TOKEN, live_agent
from twin.topology import load_lab

TRIANGLE = Path(__file__).resolve().parents[2] / "labs" / "triangle"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer_name: x509.Name, issuer_key, *, ca: bool = False, server: bool = False,
          client: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    usages = [u for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, server), (ExtendedKeyUsageOID.CLIENT_AUTH, client))
              if on]
    if usages:
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


class PKI:
    """PEM files under `tmp`: ca, agent (server), client, and a stranger CA with its own client."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

        def pair(name: str, cert: x509.Certificate, key) -> None:
            (tmp / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            (tmp / f"{name}.key").write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

        for ca_name in ("ca", "stranger-ca"):
            ca_key = ec.generate_private_key(ec.SECP256R1())
            ca_cert = _cert(f"AEGIS test {ca_name}", ca_key, _name(f"AEGIS test {ca_name}"), ca_key, ca=True)
            pair(ca_name, ca_cert, ca_key)
            prefix = "" if ca_name == "ca" else "stranger-"
            for role in ("agent", "client"):
                key = ec.generate_private_key(ec.SECP256R1())
                pair(prefix + role, _cert(f"{prefix}{role}", key, ca_cert.subject, ca_key, server=role == "agent",
                                          client=role == "client"), key)

    def __getitem__(self, name: str) -> str:
        return str(self.tmp / name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def _mtls_agent(pki: PKI, sim: SimulatorBackend):
    return live_agent(sim, tls=tls_server_context(pki["agent.crt"], pki["agent.key"], pki["ca.crt"]))


def test_a_caller_with_a_client_certificate_of_the_site_ca_runs_a_preflight(pki):
    sim = SimulatorBackend()
    with _mtls_agent(pki, sim) as agent:
        assert agent.url.startswith("https://127.0.0.1:")
        backend = get_backend("http", url=agent.url, token=TOKEN, tls_ca=pki["ca.crt"],
                              tls_cert=pki["client.crt"], tls_key=pki["client.key"])
        change = change_load((TRIANGLE / "changes" / "ship_ready.yml").read_text(), load_lab(TRIANGLE))
        result = run_preflight(TRIANGLE, change, backend=backend)
        assert result["verdict"] == "ship_ready", result["reasons"]
        assert len(sim.twins) == 1 and sim.twins[0].teardown_calls == 1
        assert agent.agent.status()["twins"] == []


@pytest.mark.parametrize("client", [None, "stranger-client"], ids=["no-client-cert", "cert-of-another-ca"])
def test_a_caller_without_a_client_certificate_of_the_site_ca_is_refused_before_http(pki, client):
    sim = SimulatorBackend()
    with _mtls_agent(pki, sim) as agent:
        seen: list[str] = []
        agent.server.agent.handle = lambda *a, **k: seen.append("request")  # would record any request
        kwargs = {"tls_cert": pki[f"{client}.crt"], "tls_key": pki[f"{client}.key"]} if client else {}
        backend = RemoteBackend(agent.url, token=TOKEN, tls_ca=pki["ca.crt"], **kwargs)
        with pytest.raises(AgentError, match=r"TLS refused.*(CERTIFICATE_REQUIRED|UNKNOWN_CA)"):
            backend.spawn(load_lab(TRIANGLE), "r1")
        assert seen == [] and sim.spawn_attempts == 0


def test_mutual_tls_does_not_replace_the_token(pki):
    sim = SimulatorBackend()
    with _mtls_agent(pki, sim) as agent:
        backend = RemoteBackend(agent.url, token="wrong-token-0000000000", tls_ca=pki["ca.crt"],
                                tls_cert=pki["client.crt"], tls_key=pki["client.key"])
        with pytest.raises(AgentError, match="401 unauthorized"):
            backend.spawn(load_lab(TRIANGLE), "r1")
        assert sim.spawn_attempts == 0


def test_the_caller_refuses_an_agent_its_ca_did_not_sign(pki):
    # an agent presenting a certificate of another CA (an impostor on the agent's address)
    with live_agent(SimulatorBackend(), tls=tls_server_context(pki["stranger-agent.crt"],
                                                               pki["stranger-agent.key"])) as agent:
        backend = RemoteBackend(agent.url, token=TOKEN, tls_ca=pki["ca.crt"], tls_cert=pki["client.crt"],
                                tls_key=pki["client.key"])
        with pytest.raises(AgentError, match="TLS refused.*CERTIFICATE_VERIFY_FAILED"):
            backend.health()


def test_tls_settings_that_cannot_work_are_refused_with_the_reason(pki, tmp_path):
    with pytest.raises(AgentError, match="URL is http://; write https://"):
        RemoteBackend("http://127.0.0.1:5757", token=TOKEN, tls_cert=pki["client.crt"], tls_key=pki["client.key"])
    with pytest.raises(AgentError, match="needs both AEGIS_AGENT_CLIENT_CERT and AEGIS_AGENT_CLIENT_KEY"):
        RemoteBackend("https://127.0.0.1:5757", token=TOKEN, tls_cert=pki["client.crt"])
    with pytest.raises(AgentError, match="cannot load the client certificate"):
        RemoteBackend("https://127.0.0.1:5757", token=TOKEN, tls_cert=pki["client.crt"], tls_key=pki["agent.key"])
    with pytest.raises(ValueError, match="cannot load the agent's TLS certificate"):
        tls_server_context(pki["agent.crt"], str(tmp_path / "missing.key"))
    with pytest.raises(ValueError, match="cannot load the CA for client certificates"):
        tls_server_context(pki["agent.crt"], pki["agent.key"], str(tmp_path / "missing-ca.crt"))


def test_manage_twin_agent_serves_mutual_tls_from_its_flags(pki, tmp_path):
    import subprocess
    import sys

    repo = TRIANGLE.parents[1]
    token_file = tmp_path / "agent.token"
    token_file.write_text(TOKEN)
    base = [sys.executable, str(repo / "manage.py"), "twin_agent", "--backend", "simulator", "--listen",
            "127.0.0.1:0", "--token-file", str(token_file), "--budget-mb", "1000"]
    # a CA without the agent's own certificate cannot serve HTTPS: refused before anything listens
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="needs both --tls-cert and --tls-key"):
        call_command("twin_agent", *base[3:], "--tls-ca", pki["ca.crt"])
    proc = subprocess.Popen([*base, "--tls-cert", pki["agent.crt"], "--tls-key", pki["agent.key"], "--tls-ca",
                             pki["ca.crt"]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=repo)
    try:
        line = ""
        while proc.stdout and "listening on" not in line:
            line = proc.stdout.readline()
            assert line, "the agent did not start"
        assert "https, client certificates required" in line
        url = "https://127.0.0.1:" + line.split("listening on ")[1].split()[0].rsplit(":", 1)[1]
        ok = RemoteBackend(url, token=TOKEN, tls_ca=pki["ca.crt"], tls_cert=pki["client.crt"],
                           tls_key=pki["client.key"])
        assert ok.health()["tier"] == "simulated"
        with pytest.raises(AgentError, match="TLS refused"):
            RemoteBackend(url, token=TOKEN, tls_ca=pki["ca.crt"]).health()
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout:
            proc.stdout.close()
