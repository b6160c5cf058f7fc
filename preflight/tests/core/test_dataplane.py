"""The data-plane diff over FIBs: classes, outcomes (delivered / dropped / loop, ECMP), statements,
witness rules. FIBs are written by hand in the shape of twin/fib.py; the normaliser is checked on
real `ip -j` output captured from the fabric twin."""

from __future__ import annotations

import copy

import pytest

from preflight.core.dataplane import dataplane_diff, witness_judge, witness_plan
from twin.fib import fib_links, fib_normalize
from twin.topology import load_lab

from .examples import LABS


def local(dst, dev="lo"):
    return {"dst": dst, "table": "local", "type": "local", "nexthops": [{"dev": dev}]}


def route(dst, *hops, rtype="unicast"):
    return {"dst": dst, "table": "main", "type": rtype,
            "nexthops": [{"via": v, "dev": d} if v else {"dev": d} for v, d in hops]}


def line_fib():
    """a - b - c in a line; c owns 10.9.0.1/32 and the LAN 10.50.0.0/24 behind eth9."""
    nodes = {
        "a": {"routes": [local("10.0.0.0/32", "eth1"), route("10.0.0.0/31", (None, "eth1")),
                         route("10.9.0.1/32", ("10.0.0.1", "eth1")), route("10.50.0.0/24", ("10.0.0.1", "eth1"))],
              "addresses": [{"dev": "eth1", "address": "10.0.0.0/31"}]},
        "b": {"routes": [local("10.0.0.1/32", "eth1"), local("10.0.0.2/32", "eth2"),
                         route("10.0.0.0/31", (None, "eth1")), route("10.0.0.2/31", (None, "eth2")),
                         route("10.9.0.1/32", ("10.0.0.3", "eth2")), route("10.50.0.0/24", ("10.0.0.3", "eth2"))],
              "addresses": [{"dev": "eth1", "address": "10.0.0.1/31"}, {"dev": "eth2", "address": "10.0.0.2/31"}]},
        "c": {"routes": [local("10.0.0.3/32", "eth1"), local("10.9.0.1/32"), route("10.0.0.2/31", (None, "eth1")),
                         route("10.50.0.0/24", (None, "eth9"))],
              "addresses": [{"dev": "eth1", "address": "10.0.0.3/31"}, {"dev": "lo", "address": "10.9.0.1/32"},
                            {"dev": "eth9", "address": "10.50.0.1/24"}]},
    }
    links = {"a:eth1": ["b:eth1"], "b:eth1": ["a:eth1"], "b:eth2": ["c:eth1"], "c:eth1": ["b:eth2"]}
    return {"nodes": nodes, "links": links}


def test_an_unchanged_network_has_no_statements_and_counts_every_pair():
    fib = line_fib()
    r = dataplane_diff(fib, copy.deepcopy(fib))
    assert r.changed == [] and r.loops == [] and r.blackholes == []
    assert r.ingresses == 3 and r.pairs_checked == r.classes * 3
    assert r.pairs_looping == {"before": 0, "after": 0}


def test_a_blackhole_for_a_range_no_loopback_covers_is_one_statement_from_every_router():
    before = line_fib()
    after = copy.deepcopy(before)
    after["nodes"]["b"]["routes"].append(route("10.50.0.128/25", rtype="blackhole"))
    r = dataplane_diff(before, after)
    assert len(r.blackholes) == 1
    s = r.blackholes[0]
    assert s["ranges"] == ["10.50.0.128/25"] and s["ingresses"] == ["a", "b"]
    assert s["after"] == ["dropped@b:blackhole"] and s["before"] == ["exits@c:eth9"]
    assert s["text"].startswith("from every router but c, 10.50.0.128/25 now dropped at b (blackhole)")
    assert s["witness_address"] == "10.50.0.129"


def test_a_two_router_loop_is_found_from_every_ingress_that_reaches_it():
    before = line_fib()
    after = copy.deepcopy(before)
    after["nodes"]["a"]["routes"].append(route("10.77.0.0/16", ("10.0.0.1", "eth1")))
    after["nodes"]["b"]["routes"].append(route("10.77.0.0/16", ("10.0.0.3", "eth2")))
    after["nodes"]["c"]["routes"].append(route("10.77.0.0/16", ("10.0.0.2", "eth1")))
    r = dataplane_diff(before, after)
    assert [s["kind"] for s in r.changed] == ["loop"]
    assert r.loops[0]["ingresses"] == ["a", "b", "c"] and r.loops[0]["after"] == ["loop@b,c"]
    assert r.pairs_looping == {"before": 0, "after": 3}
    # The witness goes from outside the loop: a packet returning to its own sender is dropped.
    plan = witness_plan(r.changed, 5)
    assert plan[0]["from"] == "a" and plan[0]["expected"] == "ttl_exceeded"


def test_ecmp_follows_every_branch():
    before = line_fib()
    after = copy.deepcopy(before)
    # b gets a second, broken branch for c's loopback: a next hop nobody owns.
    b = after["nodes"]["b"]["routes"]
    b[:] = [x for x in b if x["dst"] != "10.9.0.1/32"] + [route("10.9.0.1/32", ("10.0.0.3", "eth2"),
                                                                  ("10.0.0.0", "eth1"))]
    after["nodes"]["a"]["routes"] = [x for x in after["nodes"]["a"]["routes"] if x["dst"] != "10.9.0.1/32"] + [
        route("10.9.0.1/32", ("10.0.0.1", "eth1"))]
    # a sends it back to b: half of b's traffic now loops (b -> a -> b), half is delivered.
    r = dataplane_diff(before, after)
    s = next(s for s in r.changed if s["ranges"] == ["10.9.0.1/32"])
    assert set(s["after"]) == {"delivered@c", "loop@a,b"}
    assert s["kind"] == "loop"
    assert witness_plan([s], 1)[0]["expected"] is None  # one ping cannot tell ECMP branches apart


def test_ipv6_and_unresolved_next_hops():
    before = line_fib()
    for n in ("a", "b"):
        before["nodes"][n]["routes"].append(route("2001:db8::/48", ("fe80::c", "eth2" if n == "b" else "eth1")))
    before["nodes"]["a"]["routes"][-1]["nexthops"] = [{"via": "fe80::b1", "dev": "eth1"}]
    before["nodes"]["b"]["addresses"].append({"dev": "eth1", "address": "fe80::b1/64"})
    before["nodes"]["c"]["addresses"].append({"dev": "eth1", "address": "fe80::c/64"})
    before["nodes"]["c"]["routes"].append(route("2001:db8::/48", (None, "eth9")))
    after = copy.deepcopy(before)
    after["nodes"]["c"]["addresses"] = [a for a in after["nodes"]["c"]["addresses"] if a["address"] != "fe80::c/64"]
    r = dataplane_diff(before, after)
    s = next(s for s in r.changed if s["family"] == "ipv6")
    assert s["ranges"] == ["2001:db8::/48"] and s["kind"] == "blackhole"
    assert s["before"] == ["exits@c:eth9"] and s["after"] == ["dropped@b:unresolved fe80::c"]


@pytest.mark.parametrize("expected, probe, verdict", [
    ("reply", {"replied": True}, "agree"),
    ("ttl_exceeded", {"replied": False, "ttl_exceeded": True}, "agree"),
    ("no_reply", {"replied": False}, "agree"),
    ("no_reply", {"replied": True}, "disagree"),
    ("reply", {"replied": False}, "disagree"),
    (None, {"replied": True}, "inconclusive"),
])
def test_witness_rules(expected, probe, verdict):
    got, why = witness_judge(expected, probe)
    assert got == verdict and why


def test_normalise_real_ip_json_of_a_fabric_leaf():
    routes4 = [
        {"dst": "10.1.0.0/31", "dev": "eth1", "protocol": "kernel", "scope": "link", "prefsrc": "10.1.0.1", "flags": []},
        {"dst": "10.254.0.4", "nhid": 15, "protocol": "bgp", "metric": 20, "flags": [], "nexthops": [
            {"gateway": "10.1.0.2", "dev": "eth2", "weight": 1, "flags": []},
            {"gateway": "10.1.0.0", "dev": "eth1", "weight": 1, "flags": []}]},
        {"type": "local", "dst": "10.1.0.1", "dev": "eth1", "table": "local", "protocol": "kernel", "scope": "host",
         "prefsrc": "10.1.0.1", "flags": []},
        {"type": "local", "dst": "127.0.0.0/8", "dev": "lo", "table": "local", "protocol": "kernel", "flags": []},
        {"type": "blackhole", "dst": "192.0.2.0/24", "protocol": "static", "flags": []},
        {"dst": "10.8.0.0/16", "table": "1001", "dev": "eth1", "flags": []},
    ]
    routes6 = [{"dst": "fe80::/64", "dev": "eth1", "protocol": "kernel", "metric": 256, "flags": []},
               {"type": "multicast", "dst": "ff00::/8", "dev": "eth1", "table": "local", "flags": []},
               {"dst": "default", "gateway": "fe80::1", "dev": "eth1", "protocol": "bgp", "flags": []}]
    addrs = [{"ifname": "eth1", "addr_info": [{"family": "inet", "local": "10.1.0.1", "prefixlen": 31},
                                              {"family": "inet6", "local": "fe80::2", "prefixlen": 64}]},
             {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]}]
    fib = fib_normalize(routes4, routes6, addrs)
    assert [(r["table"], r["dst"], r["type"]) for r in fib["routes"]] == [
        ("local", "10.1.0.1/32", "local"), ("main", "10.1.0.0/31", "unicast"), ("main", "10.254.0.4/32", "unicast"),
        ("main", "192.0.2.0/24", "blackhole"), ("main", "::/0", "unicast")]
    assert fib["routes"][2]["nexthops"] == [{"via": "10.1.0.0", "dev": "eth1"}, {"via": "10.1.0.2", "dev": "eth2"}]
    assert fib["skipped_tables"] == ["1001"]
    assert fib["addresses"] == [{"dev": "eth1", "address": "10.1.0.1/31"}, {"dev": "eth1", "address": "fe80::2/64"}]


def test_links_of_the_fabric():
    links = fib_links(load_lab(LABS / "fabric"))
    assert links["leaf3:eth2"] == ["spine2:eth3"] and links["spine1:eth3"] == ["leaf3:eth1"]
