"""How long approvals, the gate and device promotion steps take. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/promote_gate.py [--rounds 200] [--ledger-size 1000] [--devices] [--device-rounds 3]

Pure part (no privileges): per-user key generate / encrypt / decrypt, approval sign and
verify, and `gate_evaluate` on a real sealed bundle (evidence core, in-memory ledger of
--ledger-size leaves). With --devices (root, FRR, openssh-server): a two-router production
network like the tests' (promote/tests/prodnet.py) is started, and SSH connect, running
config read, dry-run, state read and a live apply + revert are timed per round; it is torn
down at the end, also on error.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")


def timed(fn, rounds: int) -> tuple[float, float]:
    """(median, max) wall time in milliseconds over `rounds` calls."""
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), max(samples)


def line(label: str, figures: tuple[float, float]) -> None:
    print(f"{label:<46} median {figures[0]:9.3f} ms   max {figures[1]:9.3f} ms")


def pure(rounds: int, ledger_size: int) -> None:
    from promote.core.approvals import (
        approval_verify,
        approver_key_generate,
        approver_keyring,
        private_key_decrypt,
        private_key_encrypt,
    )
    from promote.core.gate import gate_evaluate
    from promote.tests.bundles import NOW, Approver, Site, result_doc

    kek = os.urandom(32)
    key = approver_key_generate()
    blob = private_key_encrypt(key, kek, username="alice")
    line("approver key generate", timed(approver_key_generate, rounds))
    line(
        "private key encrypt (AES-256-GCM)",
        timed(lambda: private_key_encrypt(key, kek, username="alice"), rounds),
    )
    line("private key decrypt", timed(lambda: private_key_decrypt(blob, kek, username="alice"), rounds))

    site = Site()
    t = time.perf_counter()
    for i in range(ledger_size - 1):
        site.seal(result_doc(run_id=f"r{i}"))
    print(f"{'ledger filled with sealed bundles':<46} {ledger_size - 1} in {time.perf_counter() - t:.1f} s")
    bundle = site.seal(result_doc(verdict="needs_approval", risk="high"))
    alice, bob = Approver("alice"), Approver("bob")
    ring = approver_keyring([alice.registered, bob.registered])
    tokens = [alice.approve(bundle), bob.approve(bundle)]
    line("approval sign (statement + DSSE)", timed(lambda: alice.approve(bundle), rounds))
    line("approval verify", timed(lambda: approval_verify(tokens[0], ring), rounds))

    def gate():
        r = gate_evaluate(
            bundle=bundle,
            site_keys=site.site_keys,
            log_keys=site.log_keys,
            approvals=tokens,
            approver_keys=ring,
            used_jtis=set(),
            now=NOW,
            ledger_origin="aegis.test/ledger",
        )
        assert r.devices_allowed, r.reasons

    line(f"gate_evaluate G1-G4 (2 approvals, ledger {ledger_size})", timed(gate, rounds))
    print(f"{'bundle.json size':<46} {len(str(bundle))} characters")


def devices(rounds: int) -> None:
    from promote.connectors import DeviceSpec
    from promote.connectors.frr_ssh import FrrSshConnector
    from promote.tests.connectors.test_promotion_prod import CONFIGS, LINKS, R1
    from promote.tests.prodnet import ProdNetwork, prerequisites_missing

    missing = prerequisites_missing()
    if missing:
        print(f"device figures skipped: {missing}")
        return
    t = time.perf_counter()
    net = ProdNetwork.start(CONFIGS, LINKS)
    try:
        net.wait_established(peers=1)
        print(f"{'production network up (2 routers, BGP up)':<46} {time.perf_counter() - t:.2f} s")
        spec = DeviceSpec(**net.device("r1"))
        candidate = R1.replace("!\nrouter bgp", "ip route 192.0.2.0/24 Null0\n!\nrouter bgp", 1)
        figures: dict[str, list[float]] = {}

        def step(name, fn, *args):
            s = time.perf_counter()
            out = fn(*args)
            figures.setdefault(name, []).append((time.perf_counter() - s) * 1000)
            return out

        for _ in range(rounds):
            conn = step("ssh connect (netmiko, key auth)", lambda: FrrSshConnector(spec).open())
            try:
                step("running config read", conn.running_config)
                step("dry-run (upload, vtysh --dryrun, frr-reload --test)", conn.dry_run, candidate)
                step("state read (v4+v6 routes, bgp)", conn.state)
                res = step("live apply (reload, write memory, re-test)", conn.apply, candidate)
                assert res.applied, res.error
                step("live revert to baseline", conn.apply, R1)
            finally:
                conn.close()
        for name, samples in figures.items():
            line(name, (statistics.median(samples), max(samples)))
    finally:
        t = time.perf_counter()
        net.teardown()
        print(f"{'production network teardown':<46} {time.perf_counter() - t:.2f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--ledger-size", type=int, default=1000)
    p.add_argument("--devices", action="store_true", help="also time device steps (root, FRR, sshd)")
    p.add_argument("--device-rounds", type=int, default=3)
    args = p.parse_args()
    import django

    django.setup()
    pure(args.rounds, args.ledger_size)
    if args.devices:
        devices(args.device_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
