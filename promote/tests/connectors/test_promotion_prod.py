"""Promotion against a real "production" FRR network over SSH (promote/tests/prodnet.py).

Real parts throughout: FRR 8.4.4 daemons in their own namespaces, a real OpenSSH server in
each router, netmiko over SSH, FRR's own vtysh and frr-reload.py on the router, the real
netns twin (preflight's run_preflight) for the prediction, and bundles sealed with the
evidence core. Nothing is mocked. The production network is separate from any twin
(namespaces `aegis-prod-<pid>n<k>-<router>`) and torn down in finalizers, also on failure.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evidence.core.bundle import lab_files_collect
from promote.connectors import ConnectorError, DeviceSpec, connector_for
from promote.connectors.frr_ssh import FrrSshConnector
from promote.core.approvals import approval_verify, approver_keyring
from promote.core.drift import config_digest
from promote.core.promotion import promotion_execute
from promote.tests.bundles import Approver, Site
from promote.tests.prodnet import ProdNetwork, prerequisites_missing, prodnet_reap

pytestmark = [
    pytest.mark.twin,
    pytest.mark.skipif(
        bool(prerequisites_missing()), reason=f"production network: {prerequisites_missing()}"
    ),
]

# Written in FRR's own rendering (what `show running-config` prints), as a site's configs
# are when the lab is built from the routers: then the drift check compares like with like.
R1 = """frr version 8.4.4
frr defaults datacenter
hostname r1
service integrated-vtysh-config
!
interface eth1
 ip address 10.0.12.0/31
exit
!
interface lo
 ip address 10.255.0.1/32
exit
!
router bgp 65001
 bgp router-id 10.255.0.1
 neighbor 10.0.12.1 remote-as 65002
 !
 address-family ipv4 unicast
  network 10.255.0.1/32
 exit-address-family
exit
!
"""
R2 = """frr version 8.4.4
frr defaults datacenter
hostname r2
service integrated-vtysh-config
!
interface eth1
 ip address 10.0.12.1/31
exit
!
interface lo
 ip address 10.255.0.2/32
exit
!
router bgp 65002
 bgp router-id 10.255.0.2
 neighbor 10.0.12.0 remote-as 65001
 !
 address-family ipv4 unicast
  network 10.255.0.2/32
 exit-address-family
exit
!
"""
CONFIGS = {"r1": R1, "r2": R2}
LINKS = [("r1", "eth1", "r2", "eth1")]
CLAB = """name: prod
topology:
  nodes:
    r1: {kind: linux, binds: ["r1/frr.conf:/etc/frr/frr.conf", "r1/daemons:/etc/frr/daemons"]}
    r2: {kind: linux, binds: ["r2/frr.conf:/etc/frr/frr.conf", "r2/daemons:/etc/frr/daemons"]}
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
"""
CHANGE = {
    "title": "Announce customer prefix 192.0.2.0/24 from r1",
    "description": "new customer behind r1",
    "devices": {
        "r1": "ip route 192.0.2.0/24 Null0\nrouter bgp 65001\n address-family ipv4 unicast\n"
        "  network 192.0.2.0/24\n"
    },
    "expect": {"prefixes_added": {"r1": ["192.0.2.0/24"], "r2": ["192.0.2.0/24"]}},
    "source": "file",
}
ALICE, BOB, OLIVIA = Approver("alice"), Approver("bob"), Approver("olivia")
RING = approver_keyring([ALICE.registered, BOB.registered, OLIVIA.registered])


class SettledNetnsBackend:
    """The netns backend, with each converge asked twice.

    WORKAROUND, reported to the lead: NetnsTwin.converge can return as soon as the BGP
    sessions reach Established while their first UPDATEs are still in flight (the FIB has
    been still for `stable_for`, because nothing was learnt yet), so the baseline snapshot
    sometimes lacks the peers' prefixes and the run is blocked for "undeclared" gains.
    Asking a second time waits for the FIB to be still again after that update wave.
    """

    name = "netns"
    tier = "real"

    def __init__(self) -> None:
        from twin.netns import NetnsBackend

        self._backend = NetnsBackend()

    def spawn(self, topology, run_id=None, progress=None):
        kwargs = {"progress": progress} if progress is not None else {}
        return _SettledTwin(self._backend.spawn(topology, run_id, **kwargs))


class _SettledTwin:
    def __init__(self, twin) -> None:
        self._twin = twin

    def __getattr__(self, name):
        return getattr(self._twin, name)

    def converge(self, timeout, stable_for=3.0, **kw):
        first = self._twin.converge(timeout, stable_for, **kw)
        return self._twin.converge(timeout, stable_for, **kw) if first.converged else first


@pytest.fixture(scope="module")
def twin_result(tmp_path_factory):
    """The real twin's verdict and prediction for CHANGE, on a lab that mirrors production."""
    from preflight.core.pipeline import run_preflight

    lab = tmp_path_factory.mktemp("prodlab")
    (lab / "prod.clab.yml").write_text(CLAB)
    for name, conf in CONFIGS.items():
        (lab / name).mkdir()
        (lab / name / "frr.conf").write_text(conf)
        (lab / name / "daemons").write_text("bgpd=yes\n")
    result = run_preflight(lab, CHANGE, backend=SettledNetnsBackend(), converge_timeout=60)
    assert result["verdict"] in ("ship_ready", "needs_approval"), result["reasons"]
    return lab, result


@pytest.fixture(scope="module")
def site():
    return Site()


@pytest.fixture(scope="module")
def bundle(site, twin_result):
    lab, result = twin_result
    return site.seal(result, operator="olivia", lab_files=lab_files_collect(lab))


def start_network() -> ProdNetwork:
    prodnet_reap()  # leftovers of an earlier test process that died
    net = ProdNetwork.start(CONFIGS, LINKS)
    try:
        net.wait_established(peers=1)
    except BaseException:
        net.teardown()
        raise
    return net


@pytest.fixture(scope="module")
def prod(request):
    """One production network for the tests that must leave it unchanged (they assert so)."""
    net = start_network()
    request.addfinalizer(net.teardown)
    return net


@pytest.fixture
def fresh_prod(request):
    """A production network of its own, for a test that changes it."""
    net = start_network()
    request.addfinalizer(net.teardown)
    return net


def inventory(net: ProdNetwork) -> dict[str, DeviceSpec]:
    return {n: DeviceSpec(**net.device(n)) for n in net.routers}


def digests(net: ProdNetwork) -> dict[str, str]:
    """sha256 of each router's raw running config, read outside SSH (the ground truth)."""
    return {n: hashlib.sha256(r.running_config().encode()).hexdigest() for n, r in net.routers.items()}


def promote(site, bundle, net, approvals, **kw):
    args = dict(
        actor="olivia",
        bundle=bundle,
        site_keys=site.site_keys,
        log_keys=site.log_keys,
        approvals=approvals,
        approver_keys=RING,
        used_jtis=set(),
        devices=inventory(net),
        ledger_origin="aegis.test/ledger",
        now=datetime.now(UTC),
    )
    args.update(kw)
    return promotion_execute(**args)


def approvals_for(bundle, twin_result):
    _, result = twin_result
    if result["verdict"] == "ship_ready":
        return [ALICE.approve(bundle, at=datetime.now(UTC))]  # not required, but must still be valid
    n = 2 if result["risk"]["tier"] == "high" else 1
    return [a.approve(bundle, at=datetime.now(UTC)) for a in (ALICE, BOB)[:n]]


def test_dry_run_shows_the_delta_and_changes_nothing(site, bundle, twin_result, prod):
    before = digests(prod)
    out = promote(site, bundle, prod, approvals_for(bundle, twin_result))
    assert out.outcome == "dry_run", out.record["reasons"]
    dry = out.record["devices"]["r1"]["dry_run"]
    assert dry["syntax_ok"]
    assert "ip route 192.0.2.0/24 Null0" in dry["lines_to_add"]
    assert "  network 192.0.2.0/24" in dry["lines_to_add"]
    assert dry["lines_to_delete"] == []
    assert "r2" not in out.record["devices"] or "dry_run" not in out.record["devices"]["r2"]
    assert all(d["drift"]["ok"] for d in out.record["devices"].values())
    assert digests(prod) == before, "a dry-run must not change any running config"
    assert out.consumed_jtis == [], "a dry-run does not use up the approval"
    assert out.record["gate"]["passed"] and out.record["mode"] == "dry-run"


def test_live_applies_and_read_back_matches_the_twin_prediction(site, bundle, twin_result, fresh_prod):
    prod = fresh_prod
    _, result = twin_result
    tokens = approvals_for(bundle, twin_result)
    consumed_by_shell: list[str] = []
    out = promote(
        site,
        bundle,
        prod,
        tokens,
        live_requested=True,
        site_allows_live=True,
        consume=lambda jtis: consumed_by_shell.extend(sorted(jtis)),
    )
    assert out.outcome == "applied", out.record["reasons"]
    assert out.record["devices"]["r1"]["apply"]["applied"] and out.record["devices"]["r1"]["apply"]["saved"]
    assert out.record["devices"]["r1"]["apply"]["remaining_delta"] == []
    # post-implementation verification: both routers match the twin's after-snapshot
    assert out.verification is not None and out.verification["ok"], out.verification
    print(f"verification settled after {out.verification['waited_s']} s")
    assert out.verification["promotion_record"] == out.record_digest
    assert set(out.verification["devices"]) == {"r1", "r2"}
    r2_route = out.verification["devices"]["r2"]["observed"]["routes"]["192.0.2.0/24"]
    assert r2_route == result["snapshots"]["after"]["nodes"]["r2"]["routes"]["192.0.2.0/24"]
    assert r2_route["protocol"] == "bgp"
    # saved: the router's own frr.conf now holds the change (write memory)
    saved = (prod.routers["r1"].etc / "frr.conf").read_text()
    assert "network 192.0.2.0/24" in saved and "ip route 192.0.2.0/24 Null0" in saved
    assert consumed_by_shell == sorted(out.consumed_jtis), "consume() saw exactly the approvals used"
    # the approvals were used; presenting them again is a replay
    assert sorted(out.consumed_jtis) == sorted(a.jti for a in out.gate.approvals)
    again = promote(
        site,
        bundle,
        prod,
        tokens,
        live_requested=True,
        site_allows_live=True,
        used_jtis=set(out.consumed_jtis),
    )
    assert again.outcome == "refused"
    assert any("replay refused" in r for r in again.record["reasons"])


def test_a_reload_that_does_not_take_is_a_failure_and_is_not_saved(site, bundle, twin_result, fresh_prod):
    """The candidate needs ospfd, which this router does not run: FRR's parser accepts it,
    frr-reload cannot apply it. The attempt fails, nothing is saved, the approval is spent."""
    prod = fresh_prod
    saved_before = (prod.routers["r1"].etc / "frr.conf").read_text()
    cand = R1 + "router ospf\n ospf router-id 10.255.0.1\nexit\n!\n"
    out = promote(
        site,
        bundle,
        prod,
        approvals_for(bundle, twin_result),
        live_requested=True,
        site_allows_live=True,
        candidates={"r1": cand},
    )
    assert out.outcome == "failed"
    apply = out.record["devices"]["r1"]["apply"]
    assert not apply["applied"] and not apply["saved"]
    assert "+ router ospf" in apply["remaining_delta"]
    assert any("not saved" in r and r.startswith("r1: ") for r in out.record["reasons"])
    assert (prod.routers["r1"].etc / "frr.conf").read_text() == saved_before
    assert out.consumed_jtis, "the approval was spent on a live attempt that reached the device"
    assert out.verification is None


def test_drifted_router_is_refused_and_nothing_is_sent(site, bundle, twin_result, fresh_prod):
    prod = fresh_prod
    # someone changed r2 by hand after the twin ran
    prod.routers["r2"].vtysh("configure terminal", "ip route 10.99.0.0/24 Null0")
    before = digests(prod)
    out = promote(
        site, bundle, prod, approvals_for(bundle, twin_result), live_requested=True, site_allows_live=True
    )
    assert out.outcome == "refused"
    assert any("r2: running config" in r and "stale" in r for r in out.record["reasons"]), out.record[
        "reasons"
    ]
    drift = out.record["devices"]["r2"]["drift"]
    assert drift["method"] == "frr-reload" and "no ip route 10.99.0.0/24 Null0" in drift["diff"]
    assert "dry_run" not in out.record["devices"]["r1"] and "apply" not in out.record["devices"]["r1"]
    assert digests(prod) == before
    assert out.consumed_jtis == []


def test_live_with_a_candidate_frr_refuses_applies_nothing(site, bundle, twin_result, prod):
    before = digests(prod)
    bad = R1 + "router bgp 65001\n neighbr 10.0.12.1 remote-as 65002\n"
    out = promote(
        site,
        bundle,
        prod,
        approvals_for(bundle, twin_result),
        live_requested=True,
        site_allows_live=True,
        candidates={"r1": bad},
    )
    assert out.outcome == "refused"
    assert any("refused by FRR's parser" in r for r in out.record["reasons"])
    assert "nothing was applied" in out.record["reasons"]
    assert "apply" not in out.record["devices"]["r1"] and out.consumed_jtis == []
    assert any("vtysh --dryrun" in c["command"] for c in out.record["devices"]["r1"]["commands"])
    assert digests(prod) == before


def test_an_approval_spent_concurrently_is_refused_before_applying(site, bundle, twin_result, prod):
    before = digests(prod)
    spent = set()

    def consume(jtis):  # the shell's atomic "mark used"; here another promotion won the race
        if spent.intersection(jtis):
            raise ValueError("jti already consumed")
        spent.update(jtis)

    tokens = approvals_for(bundle, twin_result)
    spent.add(approval_verify(tokens[0], RING).jti)
    out = promote(site, bundle, prod, tokens, live_requested=True, site_allows_live=True, consume=consume)
    assert out.outcome == "refused"
    assert any("already used by another promotion" in r for r in out.record["reasons"])
    assert all("apply" not in d for d in out.record["devices"].values())
    assert digests(prod) == before


def test_a_hand_written_baseline_is_not_drift_when_frr_finds_nothing_to_change(site, twin_result, prod):
    """The lab's r1 config written by hand (comments, no `exit`s, blank lines) as a site would."""
    lab, result = twin_result
    hand = (
        "frr version 8.4.4\nfrr defaults datacenter\nhostname r1\nservice integrated-vtysh-config\n"
        "! uplink to r2\ninterface eth1\n ip address 10.0.12.0/31\n\ninterface lo\n ip address 10.255.0.1/32\n"
        "\nrouter bgp 65001\n bgp router-id 10.255.0.1\n neighbor 10.0.12.1 remote-as 65002\n"
        " address-family ipv4 unicast\n  network 10.255.0.1/32\n exit-address-family\n"
    )
    assert config_digest(hand) != config_digest(R1)
    files = lab_files_collect(lab)
    files["r1/frr.conf"] = {
        "sha256": hashlib.sha256(hand.encode()).hexdigest(),
        "bytes": len(hand),
        "text": hand,
    }
    edited = json.loads(json.dumps(result))
    edited["run_id"] = "hand-written-lab"
    edited["lab"]["node_configs"]["r1"] = "sha256:" + files["r1/frr.conf"]["sha256"]
    bundle = site.seal(edited, operator="olivia", lab_files=files)
    out = promote(site, bundle, prod, approvals_for(bundle, (lab, edited)))
    assert out.outcome == "dry_run", out.record["reasons"]
    assert out.record["devices"]["r1"]["drift"]["method"] == "frr-reload"
    assert out.record["devices"]["r2"]["drift"]["method"] == "digest"


def test_nothing_live_without_the_site_opt_in(site, bundle, twin_result, prod):
    before = digests(prod)
    contacted = []

    def connect(spec):
        contacted.append(spec.name)
        return connector_for(spec)

    out = promote(
        site,
        bundle,
        prod,
        approvals_for(bundle, twin_result),
        live_requested=True,
        site_allows_live=False,
        connect=connect,
    )
    assert out.outcome == "refused" and contacted == []
    assert any("G4" in r and "AEGIS_ALLOW_LIVE_PROMOTION" in r for r in out.record["reasons"])
    assert digests(prod) == before


@pytest.mark.parametrize("problem", ["self-approved", "wrong-bundle", "expired", "tampered-bundle"])
def test_bad_tokens_and_tampered_bundles_never_reach_a_device(site, bundle, twin_result, prod, problem):
    contacted = []

    def connect(spec):
        contacted.append(spec.name)
        return connector_for(spec)

    now = datetime.now(UTC)
    target = bundle
    if problem == "self-approved":
        tokens = [OLIVIA.approve(bundle, at=now)]
    elif problem == "wrong-bundle":
        other = site.seal({**twin_result[1], "run_id": "another-run"}, operator="olivia")
        tokens = [ALICE.approve(other, at=now)]
    elif problem == "expired":
        tokens = [ALICE.approve(bundle, at=now.replace(year=now.year - 1), ttl_s=60)]
    else:
        tokens = approvals_for(bundle, twin_result)
        target = {**bundle, "digest": "sha256:" + "0" * 64}
    out = promote(site, target, prod, tokens, live_requested=True, site_allows_live=True, connect=connect)
    assert out.outcome == "refused"
    assert contacted == []
    expected = {"self-approved": "G3", "wrong-bundle": "G3", "expired": "G3", "tampered-bundle": "G1"}[
        problem
    ]
    assert any(r.startswith(expected) for r in out.record["reasons"]), out.record["reasons"]


def test_connector_refuses_a_device_with_an_unknown_host_key(prod, tmp_path):
    spec = DeviceSpec(**prod.device("r1"))
    other = prod.device("r2")
    # r2's host key pinned under r1's address: r1 must be refused
    known = Path(str(spec.known_hosts)).read_text().splitlines()
    line = next(ln for ln in known if ln.startswith(f"[127.0.0.1]:{other['port']} "))
    pinned = tmp_path / "known_hosts"
    pinned.write_text(line.replace(f"]:{other['port']} ", f"]:{spec.port} ") + "\n")
    # the genuine pin is accepted (so the refusal below is about the key, not the file)
    FrrSshConnector(DeviceSpec(**prod.device("r1"))).open().close()
    with pytest.raises(ConnectorError, match="SSH to root@127.0.0.1.*host key"):
        FrrSshConnector(DeviceSpec(**{**prod.device("r1"), "known_hosts": str(pinned)})).open()


def test_production_network_is_isolated_from_the_host(prod):
    import socket

    host_name = socket.gethostname()
    with FrrSshConnector(DeviceSpec(**prod.device("r2"))) as conn:
        rc, out = conn._sh("hostname; readlink /proc/self/ns/net")
    assert rc == 0 and out.splitlines()[0] == "r2", "the SSH session runs inside router r2"
    assert out.splitlines()[1] != os.readlink("/proc/self/ns/net")
    assert socket.gethostname() == host_name, "the host's hostname is untouched"
    assert (
        not Path("/run/frr/zebra.pid").exists()
        or Path("/run/frr/zebra.pid").stat().st_ctime < prod.started_at
    )


def test_connector_reports_parser_errors_without_applying(prod):
    before = digests(prod)
    with FrrSshConnector(DeviceSpec(**prod.device("r1"))) as conn:
        running = conn.running_config()
        assert config_digest(running) == config_digest(R1)
        res = conn.dry_run(R1 + "router bgp 65001\n neighbr 10.0.12.1 remote-as 65002\n")
    assert not res.syntax_ok
    assert any("Unknown command" in e and "neighbr" in e for e in res.syntax_errors)
    assert digests(prod) == before


def test_a_network_that_fails_to_start_leaves_nothing_behind():
    import tempfile

    before_ns = set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()
    before_tmp = set(Path(tempfile.gettempdir()).glob("aegis-prod-*"))
    with pytest.raises(KeyError):
        ProdNetwork.start(
            CONFIGS, [("r1", "eth1", "r9", "eth1")]
        )  # r9 does not exist: fails after r1, r2 exist
    after_ns = set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()
    assert {n for n in after_ns - before_ns if n.startswith("aegis-prod-")} == set()
    assert set(Path(tempfile.gettempdir()).glob("aegis-prod-*")) - before_tmp == set()
