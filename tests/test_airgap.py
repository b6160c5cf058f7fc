"""The air-gapped install, proven end to end (marker `airgap`; `pytest -m airgap` runs it alone).

From nothing but this checkout and the package registries: Debian's docker.io is installed and
dockerd started if needed; `./aegis offline-kit` builds the images from Debian packages and the
pinned wheels and writes a signed kit; the built images are removed, so that what runs next
comes from the kit: `install-offline.sh` verifies the kit (and refuses it with one byte
changed), loads the images and lays out the compose files; the air-gapped stack comes up
(internal network, web on loopback only); a user with the operator role submits a preflight of
the bundled triangle lab through the REST API; the sealed bundle is downloaded and verified
with the standalone verifier; and no egress is shown twice: no container's network namespace
has a default route, and a capture on the host of everything to or from the stack's subnet,
running for the whole life of the stack, holds no packet to an address outside it and no
connection that a container opened towards the host. Containers, networks, volumes and the
test's images are removed at the end, also when it fails; dockerd stays up, empty.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.airgap, pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parent.parent
TIMINGS: dict[str, float] = {}

# Not yet proven green end to end (see docs/airgap.md): opt in until it is.
if os.environ.get("AEGIS_AIRGAP_TEST") != "1":
    pytest.skip("set AEGIS_AIRGAP_TEST=1 to run the air-gap proof (not yet proven green in CI)",
                allow_module_level=True)
if os.geteuid() != 0 or not sys.platform.startswith("linux"):
    pytest.skip("the air-gap proof needs root on Linux (dockerd, mmdebstrap)", allow_module_level=True)


def sh(*cmd: str, timeout: float = 900, check: bool = True, env: dict | None = None,
       cwd: Path | None = None) -> subprocess.CompletedProcess:
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                         stdin=subprocess.DEVNULL)
    if check and run.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return run


def timed(name: str, start: float) -> None:
    TIMINGS[name] = round(time.monotonic() - start, 1)
    print(f"[airgap] {name}: {TIMINGS[name]} s", flush=True)


def wait_for(what: str, predicate, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """One compose project of the installed kit; every command is run in its folder."""

    def __init__(self, target: Path, project: str, port: int) -> None:
        self.target, self.project, self.port = target, project, port
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": project, "AEGIS_WEB_PORT": str(port)}

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        return sh("docker-compose", "-f", "docker-compose.yml", "-f", "docker-compose.airgap.yml", *args,
                  timeout=timeout, check=check, env=self.env, cwd=self.target)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def manage(self, *args: str) -> str:
        return self.compose("exec", "-T", "web", "/opt/aegis/app/deploy/entrypoint.sh", "manage", *args).stdout

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300, check=False)


def api(port: int, path: str, token: str, body: dict | None = None, raw: bool = False):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET")
    req.add_header("Authorization", f"Token {token}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, data=data, timeout=60) as resp:
        payload = resp.read()
    return payload if raw else json.loads(payload)


def capture_verdict(pcap: Path, subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address,
                    web_ip: ipaddress.IPv4Address) -> tuple[int, list[str]]:
    """Packets seen, and those that break the air gap.

    Allowed: container <-> container inside the subnet, and the host reaching the web's port 8088
    through the published loopback port (docker-proxy connects from the gateway address). Not
    allowed: any packet to or from an address outside the subnet, any other packet to the host.
    """
    text = sh("tcpdump", "-nn", "-q", "-r", str(pcap), "ip", check=False).stdout.splitlines()
    bad = []
    for line in text:
        parts = line.split()
        try:
            i = parts.index("IP")
            src, dst = parts[i + 1], parts[i + 3].rstrip(":")
        except (ValueError, IndexError):
            continue

        def host_port(endpoint: str) -> tuple[ipaddress.IPv4Address, str]:
            pieces = endpoint.split(".")
            return ipaddress.ip_address(".".join(pieces[:4])), ".".join(pieces[4:])

        (s_ip, s_port), (d_ip, d_port) = host_port(src), host_port(dst)
        if s_ip not in subnet or d_ip not in subnet:
            bad.append(line)
        elif gateway in (s_ip, d_ip):
            published = (s_ip == gateway and d_ip == web_ip and d_port == "8088") or (
                d_ip == gateway and s_ip == web_ip and s_port == "8088")
            if not published:
                bad.append(line)
    return len(text), bad


@pytest.fixture
def workdir(tmp_path_factory) -> Iterator[Path]:
    # Not under /tmp's pytest folders only: the kit is ~1 GB; it is removed at the end.
    path = tmp_path_factory.mktemp("airgap")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_airgapped_install_from_the_kit(workdir: Path) -> None:
    tag = f"airgap-test-{os.getpid()}"
    project = f"aegisairgap{os.getpid()}"
    kit, target = workdir / "kit", workdir / "site"
    key_file = workdir / "site-key" / "site_ed25519.pem"
    stack = Stack(target, project, free_port())
    tcpdump: subprocess.Popen | None = None
    try:
        # 1. The kit, built here from Debian packages and the pinned wheels.
        t = time.monotonic()
        sh(str(ROOT / "aegis"), "offline-kit", str(kit), "--key", str(key_file), "--tag", tag, timeout=1500)
        timed("offline kit (build images + save + sign)", t)
        TIMINGS["kit MB"] = round(sum(f.stat().st_size for f in kit.rglob("*") if f.is_file()) / 1e6)
        images = (kit / "images" / "images.txt").read_text()
        print(f"[airgap] images:\n{images}[airgap] kit: {TIMINGS['kit MB']} MB", flush=True)
        for sub in ("images/aegis-images.tar", "wheelhouse/wheels.lock", "debs/debian-packages.lock",
                    "labs/triangle/aegis.yml", "install-offline.sh", "MANIFEST.sha256", "MANIFEST.sha256.sig"):
            assert (kit / sub).is_file(), f"the kit has no {sub}"

        # What runs next must come from the kit, not from the build: remove the built images.
        sh("docker", "rmi", f"aegis:{tag}", f"aegis-base:{tag}")

        # 2. Verify: the site's trusted key; one changed byte refuses the kit.
        trusted = workdir / "trusted.pem"
        trusted.write_bytes((kit / "kit-signing-key.pem").read_bytes())
        install = [str(kit / "install-offline.sh"), "--trusted-key", str(trusted)]
        tar = kit / "images" / "aegis-images.tar"
        with tar.open("r+b") as fh:
            fh.seek(tar.stat().st_size // 2)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 0x01]))
        refused = sh(*install, "--target", str(target), check=False)
        assert refused.returncode == 1 and "images/aegis-images.tar" in refused.stderr, refused.stderr
        assert not target.exists(), "a refused kit laid files out"
        with tar.open("r+b") as fh:
            fh.seek(tar.stat().st_size // 2)
            fh.write(byte)
        sh(*install, "--verify-only")

        t = time.monotonic()
        sh(*install, "--target", str(target), env={**os.environ, "COMPOSE_PROJECT_NAME": project})
        timed("install-offline (verify + docker load)", t)
        assert f"AEGIS_TAG={tag}" in (target / ".env").read_text()

        # 3. The air-gapped stack, with a capture of its subnet from before the first container starts.
        stack.compose("up", "--no-start")
        net = json.loads(sh("docker", "network", "inspect", f"{project}_aegis").stdout)[0]
        assert net["Internal"] is True
        ipam = net["IPAM"]["Config"][0]
        subnet = ipaddress.ip_network(ipam["Subnet"])
        gateway = ipaddress.ip_address(ipam["Gateway"])
        pcap = workdir / "stack.pcap"
        tcpdump = subprocess.Popen(
            ["tcpdump", "-i", "any", "-nn", "-U", "-w", str(pcap), f"net {subnet} or (ip and not net 127.0.0.0/8 "
             f"and (src net {subnet} or dst net {subnet}))"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for("tcpdump to listen", lambda: pcap.exists(), 30, 0.2)

        t = time.monotonic()
        stack.compose("up", "-d")
        wait_for("the web to answer", lambda: _http_ok(stack.port), 600)
        wait_for("the twin worker to be healthy", lambda: _healthy(stack.container("worker")), 600, 3)
        timed("stack start (up -d to web and worker healthy)", t)

        # The web port is published on the host's loopback only.
        ports = sh("docker", "port", stack.container("web")).stdout.split()
        assert ports and all(p.startswith("127.0.0.1:") for p in ports if ":" in p), ports

        # No default route in any container's namespace (Docker's own route via the gateway is gone).
        for service in ("db", "redis", "web", "worker"):
            pid = sh("docker", "inspect", "-f", "{{.State.Pid}}", stack.container(service)).stdout.strip()
            routes = sh("nsenter", "-t", pid, "-n", "ip", "-4", "route", "show").stdout
            assert "default" not in routes, f"{service} has a route out: {routes}"
            assert str(subnet) in routes, f"{service}: {routes}"
        # The web process runs as its own user, with no capabilities.
        web_status = sh("docker", "exec", stack.container("web"), "bash", "-c",
                        "grep -E '^(Uid|CapEff|CapBnd)' /proc/$(pgrep -o daphne)/status").stdout
        assert "Uid:\t10001" in web_status and "CapEff:\t0000000000000000" in web_status, web_status
        assert "CapBnd:\t0000000000000000" in web_status, web_status

        # 4. Roles and a user (setup_roles ran at start; run it again: it must be idempotent).
        stack.manage("setup_roles")
        token = stack.manage("shell", "-c", _MAKE_OPERATOR).strip().splitlines()[-1]
        assert len(token) == 40, token

        # 5. A preflight of a bundled lab through the REST API, in the worker's twin.
        change = _load_yaml(ROOT / "labs" / "triangle" / "changes" / "ship_ready.yml")
        t = time.monotonic()
        accepted = api(stack.port, "/api/preflight/run", token,
                       {"lab": "triangle", "title": change["title"], "description": change["description"],
                        "devices": change["devices"], "expect": change["expect"]})
        run_id = accepted["run_id"]
        run = wait_for("the sealed verdict",
                       lambda: (lambda r: r if r["status"] in ("finished", "failed") else None)(
                           api(stack.port, f"/api/runs/{run_id}", token)), 900, 3)
        timed("in-container preflight (submit to sealed)", t)
        assert run["status"] == "finished", run
        assert run["verdict"] == "ship_ready" and run["sealed"], run
        events = api(stack.port, f"/api/runs/{run_id}/events", token)
        print("[airgap] steps: " + ", ".join(
            f"{e['step']}={e['status']}" for e in (events.get("results", events) if isinstance(events, dict) else events)),
            flush=True)

        # 6. The bundle, downloaded and verified offline with the standalone verifier.
        bundles = api(stack.port, "/api/bundles", token)
        rows = bundles.get("results", bundles) if isinstance(bundles, dict) else bundles
        bundle = next(b for b in rows if b["run_id"] == run_id)
        (workdir / "bundle.json").write_bytes(api(stack.port, f"/api/bundles/{bundle['id']}/json", token, raw=True))
        keyring = workdir / "keyring"
        stack.manage("evidence_key", "export", "--out", "/var/lib/aegis/home/export")
        sh("docker", "cp", f"{stack.container('web')}:/var/lib/aegis/home/export", str(keyring))
        verified = sh(sys.executable, str(ROOT / "evidence" / "verify_standalone.py"), str(workdir / "bundle.json"),
                      "--keyring", str(keyring), check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert bundle["digest"] == run["bundle_digest"]

        # 7. Nothing left the internal network during the whole life of the stack.
        time.sleep(1)  # the last packets reach the file (-U writes each packet)
        os.killpg(tcpdump.pid, signal.SIGINT)
        tcpdump.wait(timeout=30)
        tcpdump = None
        web_ip = ipaddress.ip_address(json.loads(sh("docker", "inspect", stack.container("web")).stdout)[0]
                                      ["NetworkSettings"]["Networks"][f"{project}_aegis"]["IPAddress"])
        seen, bad = capture_verdict(pcap, subnet, gateway, web_ip)
        print(f"[airgap] capture: {seen} IPv4 packets on {subnet}, {len(bad)} outside the air gap", flush=True)
        assert seen > 100, "the capture saw (almost) nothing: it did not watch the stack"
        assert bad == [], "\n".join(bad[:20])
        if shutil.which("conntrack"):
            tracked = sh("conntrack", "-L", "-s", str(subnet), check=False).stdout.splitlines()
            outward = [c for c in tracked if not _conntrack_inside(c, subnet)]
            assert outward == [], outward[:10]
        print("[airgap] timings: " + json.dumps(TIMINGS), flush=True)
    finally:
        if tcpdump is not None:
            os.killpg(tcpdump.pid, signal.SIGKILL)
            tcpdump.wait(timeout=30)
        if target.exists():
            stack.down()
        sh("docker", "rmi", "-f", f"aegis:{tag}", f"aegis-base:{tag}", check=False)
        left = sh("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
        left += sh("docker", "network", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
        left += sh("docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
        assert left == [], f"left behind: {left}"


_MAKE_OPERATOR = """
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
user, _ = User.objects.get_or_create(username="airgap-operator")
user.groups.add(Group.objects.get(name="operator"))
print(Token.objects.get_or_create(user=user)[0].key)
"""


def _load_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def _http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def _healthy(container: str) -> bool:
    if not container:
        return False
    state = sh("docker", "inspect", "-f", "{{.State.Health.Status}}", container, check=False).stdout.strip()
    if state == "unhealthy":
        raise AssertionError(f"{container} is unhealthy: " + sh("docker", "logs", "--tail", "50", container,
                                                                check=False).stderr[-3000:])
    return state == "healthy"


def _conntrack_inside(line: str, subnet: ipaddress.IPv4Network) -> bool:
    fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
    try:
        return ipaddress.ip_address(fields["dst"]) in subnet
    except (KeyError, ValueError):
        return True
