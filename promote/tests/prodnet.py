"""A real "production" FRR network for the promotion tests, separate from any twin.

Each router is a Linux network namespace `aegis-prod-<pid>-<name>` holding a small
"container without Docker" (docs: /work/shared/notes/TWIN.md §3.5): a holder process with
its own mount and UTS namespaces, in which the router's own `/etc/frr` and `/var/run/frr`
are bind-mounted from a temp dir, `hostname` is the router's name, FRR's daemons run and
load the integrated `frr.conf` with `vtysh -b` exactly as on a real box, and a real OpenSSH
server (`/usr/sbin/sshd` from Debian's openssh-server) listens on port 22 with its own host
key and key-only login.

The test process reaches each sshd through a TCP forwarder on 127.0.0.1:<ephemeral port> in
the host namespace: for every accepted connection a thread enters the router's network
namespace with libc `setns` (which moves only the calling thread), connects to 127.0.0.1:22
there and pumps bytes. So the router namespaces have no link to the host network, and the
connector under test really speaks SSH to a real sshd in the router.

Everything started here is torn down by `ProdNetwork.teardown()` (processes killed by the
PIDs we recorded, after checking their command line; namespaces deleted; temp dirs
removed), and `prodnet_reap()` removes leftovers of a test process that died.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "aegis-prod-"
FRR_LIB = Path("/usr/lib/frr")
SSHD = "/usr/sbin/sshd"
CLONE_NEWNET = 0x40000000
DAEMONS = ("zebra", "staticd", "bgpd")  # zebra first: the others register with it

_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count(1)


def prerequisites_missing() -> str | None:
    """Why this machine cannot run the production network, or None if it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for path in (SSHD, str(FRR_LIB / "zebra"), str(FRR_LIB / "frr-reload.py"), "/usr/bin/vtysh"):
        if not os.path.exists(path):
            return f"{path} is missing (apt-get install frr frr-pythontools openssh-server)"
    return None


def _run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class _Forwarder:
    """127.0.0.1:<port> in the host namespace -> 127.0.0.1:<target_port> inside a netns."""

    def __init__(self, netns: str, target_port: int = 22) -> None:
        self.netns = netns
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, name=f"fwd-{netns}", daemon=True)
        self._accept.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.2)
            if not ready:
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._pump, args=(client,), daemon=True)
            self._threads.append(t)
            t.start()

    def _pump(self, client: socket.socket) -> None:
        # This thread moves into the router's netns for good; it only ever serves this connection.
        try:
            _setns(f"/var/run/netns/{self.netns}")
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        socks = [client, upstream]
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(socks, [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is client else client).sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._accept.join(timeout=2)
        for t in self._threads:
            t.join(timeout=2)


@dataclass
class ProdRouter:
    name: str
    netns: str
    workdir: Path
    holder: subprocess.Popen[bytes] | None = None
    sshd: subprocess.Popen[bytes] | None = None
    forwarder: _Forwarder | None = None
    ssh_port: int = 0

    @property
    def etc(self) -> Path:
        return self.workdir / "etc"

    @property
    def run(self) -> Path:
        return self.workdir / "run"

    def nsenter(self, *args: str) -> list[str]:
        assert self.holder is not None
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-u", "-n", *args]

    def sh(self, command: str, check: bool = True, timeout: float = 30) -> str:
        """Run a shell command inside the router (its netns, mounts and hostname)."""
        return _run(*self.nsenter("sh", "-c", command), check=check, timeout=timeout).stdout

    def vtysh(self, *commands: str) -> str:
        args: list[str] = []
        for c in commands:
            args += ["-c", c]
        return _run(*self.nsenter("vtysh", *args)).stdout

    def running_config(self) -> str:
        return self.vtysh("show running-config")


@dataclass
class ProdNetwork:
    """Routers with FRR and sshd in namespaces; see the module docstring."""

    run_id: str
    routers: dict[str, ProdRouter] = field(default_factory=dict)
    links: list[tuple[str, str, str, str]] = field(default_factory=list)
    client_key: Path | None = None
    root: Path | None = None
    started_at: float = field(default_factory=time.time)

    @classmethod
    def start(
        cls,
        configs: dict[str, str],
        links: list[tuple[str, str, str, str]],
        run_id: str | None = None,
    ) -> ProdNetwork:
        """Bring the network up. On any failure everything already started is torn down."""
        net = cls(run_id=run_id or f"{os.getpid()}n{next(_counter)}", links=links)
        try:
            net._start(configs)
        except BaseException:
            net.teardown()
            raise
        return net

    def _start(self, configs: dict[str, str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.run_id}-"))
        self.client_key = self.root / "client_ed25519"
        _run(
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "aegis-promote-test",
            "-f",
            str(self.client_key),
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        for name in configs:
            netns = f"{PREFIX}{self.run_id}-{name}"
            if len(netns) > 64:
                raise ValueError(f"namespace name too long: {netns}")
            router = ProdRouter(name=name, netns=netns, workdir=self.root / name)
            self.routers[name] = router
            _run("ip", "netns", "add", netns)
            _run("ip", "-n", netns, "link", "set", "lo", "up")
            _run(
                "ip",
                "netns",
                "exec",
                netns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            )
        for a, a_if, b, b_if in self.links:
            ra, rb = self.routers[a], self.routers[b]
            _run(
                "ip",
                "link",
                "add",
                "name",
                a_if,
                "netns",
                ra.netns,
                "type",
                "veth",
                "peer",
                "name",
                b_if,
                "netns",
                rb.netns,
            )
            _run("ip", "-n", ra.netns, "link", "set", a_if, "up")
            _run("ip", "-n", rb.netns, "link", "set", b_if, "up")
        for name, conf in configs.items():
            self._start_router(self.routers[name], conf)

    def _start_router(self, router: ProdRouter, conf: str) -> None:
        etc, run, sshdir = router.etc, router.run, router.workdir / "ssh"
        for d in (etc, run, sshdir):
            d.mkdir(parents=True)
        (etc / "frr.conf").write_text(conf)
        (etc / "vtysh.conf").write_text("service integrated-vtysh-config\n")
        (etc / "daemons").write_text("".join(f"{d}=yes\n" for d in DAEMONS[1:]) + "vtysh_enable=yes\n")
        shutil.chown(etc, "frr", "frr")
        shutil.chown(run, "frr", "frr")
        for f in etc.iterdir():
            shutil.chown(f, "frr", "frr")
        # The holder: a process with private mount + UTS namespaces inside the router's netns.
        router.holder = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                router.netns,
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "sleep",
                "infinity",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # `ip netns exec` and `unshare` exec in place, so the Popen PID becomes `sleep` once every
        # namespace is set up. Until then (the PID is still `ip` or `unshare`) entering its mount
        # or UTS namespace would mean the host's: the bind mounts and `hostname` would hit the host.
        # So wait for exactly `sleep infinity`, and check the namespaces are not ours.
        deadline = time.monotonic() + 5
        while not _holder_ready(router.holder.pid, router.netns):
            if time.monotonic() > deadline or router.holder.poll() is not None:
                raise RuntimeError(f"{router.name}: namespace holder did not start")
            time.sleep(0.02)
        router.sh(f"mount --bind {etc} /etc/frr && mount --bind {run} /var/run/frr && hostname {router.name}")
        for daemon in DAEMONS:
            _run(
                *router.nsenter(
                    str(FRR_LIB / daemon),
                    "-d",
                    "-P",
                    "0",
                    "-f",
                    "/dev/null",
                    "--log",
                    f"file:{run}/{daemon}.log",
                )
            )
        out = _run(*router.nsenter("vtysh", "-b"), check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{router.name}: vtysh -b failed: {out.stdout}{out.stderr}")
        # sshd with its own host key, key-only root login, in the router's namespaces.
        host_key = sshdir / "host_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
        assert self.client_key is not None
        auth = sshdir / "authorized_keys"
        auth.write_text(Path(f"{self.client_key}.pub").read_text())
        auth.chmod(0o600)
        cfg = sshdir / "sshd_config"
        cfg.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1:22",
                    f"HostKey {host_key}",
                    f"AuthorizedKeysFile {auth}",
                    f"PidFile {sshdir}/sshd.pid",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",  # the temp dir is root-owned but mode 0700 is not guaranteed
                    "PrintMotd no",
                    "PrintLastLog no",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        with open(sshdir / "sshd.log", "wb") as log:  # the child keeps its own descriptor
            router.sshd = subprocess.Popen(
                router.nsenter(SSHD, "-D", "-e", "-f", str(cfg)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        router.forwarder = _Forwarder(router.netns)
        router.ssh_port = router.forwarder.port
        # The host key the connector must see, pinned like a site's known_hosts file.
        known = self.root / "known_hosts"  # type: ignore[operator]
        with known.open("a") as fh:
            fh.write(
                f"[127.0.0.1]:{router.ssh_port} {Path(f'{host_key}.pub').read_text().split(' ')[0]} "
                f"{Path(f'{host_key}.pub').read_text().split(' ')[1]}\n"
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if router.sshd.poll() is not None:
                raise RuntimeError(f"{router.name}: sshd exited: {(sshdir / 'sshd.log').read_text()}")
            probe = _run(
                *router.nsenter("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/22 && echo up"), check=False
            )
            if "up" in probe.stdout:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{router.name}: sshd did not start listening")

    def wait_established(self, peers: int, timeout: float = 30) -> None:
        """Wait until every router has `peers` BGP sessions Established."""
        import json

        deadline = time.monotonic() + timeout
        while True:
            ok = True
            for r in self.routers.values():
                data = json.loads(r.vtysh("show bgp summary json") or "{}")
                established = [
                    p
                    for p in data.get("ipv4Unicast", {}).get("peers", {}).values()
                    if p.get("state") == "Established"
                ]
                ok = ok and len(established) >= peers
            if ok:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("BGP did not establish in the production network")
            time.sleep(0.3)

    def device(self, name: str) -> dict[str, object]:
        """Connection parameters for the connector under test."""
        r = self.routers[name]
        assert self.root is not None
        return {
            "name": name,
            "host": "127.0.0.1",
            "port": r.ssh_port,
            "username": "root",
            "key_file": str(self.client_key),
            "known_hosts": str(self.root / "known_hosts"),
        }

    def teardown(self) -> None:
        """Stop everything this network started, by PID; delete its namespaces and files."""
        for router in self.routers.values():
            if router.forwarder is not None:
                router.forwarder.close()
            for proc in (router.sshd,):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=5)
            _kill_pidfiles(router.run)
            if router.holder is not None and router.holder.poll() is None:
                router.holder.kill()
                router.holder.wait(timeout=5)
            _kill_netns_pids(router.netns)
            _run("ip", "netns", "del", router.netns, check=False)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def _holder_ready(pid: int, netns: str) -> bool:
    """The holder has exec'd `sleep` inside its own mount + UTS namespaces and the router's netns."""
    try:
        if Path(f"/proc/{pid}/cmdline").read_bytes() != b"sleep\x00infinity\x00":
            return False
        for kind in ("mnt", "uts"):
            if os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}"):
                return False
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/var/run/netns/{netns}").st_ino
    except OSError:
        return False


def _kill_pidfiles(run_dir: Path) -> None:
    """Kill the FRR daemons whose pid files are in this router's own run dir."""
    if not run_dir.is_dir():
        return
    for pidfile in run_dir.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if pidfile.stem.encode() in cmdline:
                os.kill(pid, signal.SIGKILL)


def _kill_netns_pids(netns: str) -> None:
    """Kill what is left inside one of our own namespaces (e.g. an ssh session's shell)."""
    out = _run("ip", "netns", "pids", netns, check=False).stdout.split()
    for pid in out:
        if pid == str(os.getpid()):  # never ourselves (a forwarder thread lives in the netns)
            continue
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid), signal.SIGKILL)


def prodnet_reap() -> list[str]:
    """Remove `aegis-prod-<pid>-*` namespaces whose test process (pid) is dead."""
    removed = []
    for line in _run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(PREFIX):
            continue
        owner = re.match(r"\d*", name[len(PREFIX) :]).group(0)  # run ids are "<pid>n<counter>"
        if owner and not Path(f"/proc/{owner}").exists():
            _kill_netns_pids(name)
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    for leftover in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = re.match(r"\d*", leftover.name[len(PREFIX) :]).group(0)
        if owner and leftover.is_dir() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(leftover, ignore_errors=True)
    return removed
