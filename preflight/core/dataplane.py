"""Differential reachability over the twin's real forwarding tables (destination-based).

Input: two FIB documents of the same twin (`Twin.fib()`, shape in twin/fib.py), read before and
after the change. Output: what changed for traffic, for every destination address and every
router as the ingress, as a few readable statements.

1. Classes. Every prefix of every table (both snapshots, IPv4 and IPv6) cuts the address space
   at its first address and after its last. Between two cuts every FIB picks the same entry, so
   the elementary ranges are grouped by the vector of what each router does with them (an
   incremental XOR hash over (router, action) keeps this linear in the number of cuts): a class
   is a set of ranges that every router in both snapshots treats alike.
2. Outcomes. For a class, each router forwards to its next hops (ECMP: all of them), delivers
   (the address is its own), lets the packet leave the routed part (an attached subnet or a
   non-router next hop: `exits`) or drops it (no route, blackhole/unreachable/prohibit, a next
   hop no neighbour owns, a dead link). The next-hop graph of the class is cut into strongly
   connected components (iterative Tarjan); a component with a cycle is a loop, and an
   ingress's outcome is the set of everything it can end in.
3. Diff. (ingress, class) pairs whose outcome set differs are grouped by (before, after) into
   statements; a new loop and a newly dropped class that was delivered before are flagged.

Limits (docs/pipeline.md): the default VRF's local/main/default tables only; no ACLs, policy
routing, NAT or ARP/ND failures; a next hop is resolved to the neighbour that owns its address.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

INGRESS_DROP = "dropped@ingress:"  # a drop at the ingress router itself, whichever it is
NO_ROUTE = 0  # action id: the router has no entry for the range
MAX_RANGES_SHOWN = 4
DROP_TYPES = ("blackhole", "unreachable", "prohibit")
_HASH_SEED = 12  # fixed: the same FIBs always give the same class numbering


@dataclass
class _Snapshot:
    """One FIB document prepared for lookups."""

    routers: list[str]
    links: dict[str, list[str]]
    addrs: dict[str, set[str]]  # "router:dev" -> addresses on it (link-locals included)
    resolved: dict[tuple[str, int], tuple[list[str], list[str]]] = field(default_factory=dict)


@dataclass
class DataplaneResult:
    classes: int
    ingresses: int
    pairs_checked: int
    changed: list[dict[str, Any]]
    loops: list[dict[str, Any]]
    blackholes: list[dict[str, Any]]
    pairs_looping: dict[str, int]
    pairs_dropped: dict[str, int]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"classes": self.classes, "ingresses": self.ingresses, "pairs_checked": self.pairs_checked,
                "loops": self.loops, "blackholes": self.blackholes, "changed": self.changed,
                "pairs_looping": self.pairs_looping, "pairs_dropped": self.pairs_dropped,
                "seconds": self.seconds, "notes": self.notes}


# --------------------------------------------------------------------------- actions

def _action_of(route: dict[str, Any]) -> tuple[Any, ...]:
    """What a router does with a matching packet, as a hashable value."""
    rtype = route["type"]
    if rtype in ("local", "broadcast", "anycast"):
        return ("local",)
    if rtype in DROP_TYPES:
        return ("drop", rtype)
    if rtype == "throw":
        return ("throw",)
    hops = tuple(sorted((h.get("via"), h.get("dev"), bool(h.get("down"))) for h in route["nexthops"]))
    return ("fwd", hops)


class _Interner:
    def __init__(self) -> None:
        self.ids: dict[Any, int] = {None: NO_ROUTE}
        self.values: list[Any] = [None]

    def id(self, value: Any) -> int:
        got = self.ids.get(value)
        if got is None:
            got = self.ids[value] = len(self.values)
            self.values.append(value)
        return got


@lru_cache(maxsize=262144)
def _prefix(dst: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(dst)
    return net.version, int(net.network_address), net.prefixlen


@lru_cache(maxsize=65536)
def _address(text: str) -> str:
    return str(ipaddress.ip_address(text))


def _segments(routes: list[dict[str, Any]], version: int, actions: _Interner) -> list[tuple[int, int]]:
    """[(start, action id)] of one router for one family: the action from `start` to the next start.

    Lookup order as the kernel's default rules: the local table, then main, then default; within
    a table the longest prefix wins; `throw` falls through to the next table.
    """
    bits = 32 if version == 4 else 128
    tables: dict[str, dict[int, dict[int, int]]] = {"local": {}, "main": {}, "default": {}}
    cuts: set[int] = {0}
    for r in routes:
        v, start, plen = _prefix(r["dst"])
        if v != version:
            continue
        cuts.add(start)
        end = start + (1 << (bits - plen))
        if end < (1 << bits):
            cuts.add(end)
        by_len = tables[r["table"]].setdefault(plen, {})
        # The first entry of a (table, prefix) wins; local/broadcast duplicates act alike.
        by_len.setdefault(start, actions.id(_action_of(r)))
    order = [(name, sorted(tables[name], reverse=True)) for name in ("local", "main", "default")]
    out: list[tuple[int, int]] = []
    last = -1
    for s in sorted(cuts):
        act = NO_ROUTE
        for name, lengths in order:
            found = None
            for plen in lengths:
                key = (s >> (bits - plen)) << (bits - plen) if plen else 0
                found = tables[name][plen].get(key)
                if found is not None:
                    break
            if found is not None and actions.values[found] != ("throw",):
                act = found
                break
        if act != last:
            out.append((s, act))
            last = act
    return out


# --------------------------------------------------------------------------- classes

@dataclass
class _Class:
    version: int
    ranges: list[tuple[int, int]]  # [start, end) pairs
    vector: dict[int, int]  # slot (snapshot * n + router index) -> action id, NO_ROUTE omitted


def _classes(fibs: list[dict[str, Any]], routers: list[str], actions: _Interner) -> list[_Class]:
    """Equivalence classes over all routers of all snapshots, IPv4 then IPv6."""
    n = len(routers)
    rng = random.Random(_HASH_SEED)
    keys: dict[tuple[int, int], int] = {}

    def zkey(slot: int, act: int) -> int:
        k = keys.get((slot, act))
        if k is None:
            k = keys[(slot, act)] = rng.getrandbits(128)
        return k

    out: list[_Class] = []
    for version in (4, 6):
        bits = 32 if version == 4 else 128
        events: dict[int, list[tuple[int, int]]] = {}
        for si, fib in enumerate(fibs):
            nodes = fib.get("nodes", {})
            for ri, r in enumerate(routers):
                routes = nodes.get(r, {}).get("routes", [])
                for start, act in _segments(routes, version, actions):
                    events.setdefault(start, []).append((si * n + ri, act))
        cur: dict[int, int] = {}
        h = 0
        by_hash: dict[int, _Class] = {}
        positions = sorted(events)
        for i, p in enumerate(positions):
            for slot, act in events[p]:
                old = cur.get(slot, NO_ROUTE)
                if old == act:
                    continue
                if old != NO_ROUTE:
                    h ^= zkey(slot, old)
                    del cur[slot]
                if act != NO_ROUTE:
                    h ^= zkey(slot, act)
                    cur[slot] = act
            end = positions[i + 1] if i + 1 < len(positions) else 1 << bits
            cls = by_hash.get(h)
            if cls is None:
                cls = by_hash[h] = _Class(version, [], dict(cur))
                out.append(cls)
            if cls.ranges and cls.ranges[-1][1] == p:
                cls.ranges[-1] = (cls.ranges[-1][0], end)
            else:
                cls.ranges.append((p, end))
    return out


# --------------------------------------------------------------------------- forwarding

def _prepare(fib: dict[str, Any]) -> _Snapshot:
    addrs: dict[str, set[str]] = {}
    for r, node in fib.get("nodes", {}).items():
        for a in node.get("addresses", []):
            addrs.setdefault(f"{r}:{a['dev']}", set()).add(_address(a["address"].split("/")[0]))
    return _Snapshot(sorted(fib.get("nodes", {})), fib.get("links", {}), addrs)


def _hops(snap: _Snapshot, router: str, action: tuple[Any, ...], local_here: set[str]
          ) -> tuple[list[str], list[str]]:
    """(next routers, terminal outcomes) of `router` for one class."""
    kind = action[0]
    if kind == "local":
        return [], [f"delivered@{router}"]
    if kind == "drop":
        return [], [f"dropped@{router}:{action[1]}"]
    nxt: list[str] = []
    ends: list[str] = []
    for via, dev, down in action[1]:
        if down:
            ends.append(f"dropped@{router}:link-down {dev}")
            continue
        peers = snap.links.get(f"{router}:{dev}", []) if dev else \
            [p for k, v in snap.links.items() if k.startswith(f"{router}:") for p in v]
        if via is None:
            # Connected: the destination itself is the next hop; a neighbour delivers it if it owns it.
            owners = [p.split(":")[0] for p in peers if p.split(":")[0] in local_here]
            if owners:
                nxt.extend(owners)
            else:
                ends.append(f"exits@{router}:{dev}")
            continue
        via_addr = _address(via)
        owners = [p.split(":")[0] for p in peers if via_addr in snap.addrs.get(p, ())]
        if owners:
            nxt.extend(owners)
        elif any(p.split(":")[0] not in snap.routers for p in peers):
            ends.append(f"exits@{router}:{dev}")  # a host or device outside the routed part
        else:
            ends.append(f"dropped@{router}:unresolved {via_addr}")
    return sorted(set(nxt)), ends


def _outcomes(snap: _Snapshot, vec: dict[str, int], actions: _Interner) -> dict[str, frozenset[str]]:
    """Outcome set of every router that has an entry for the class (others: no route)."""
    local_here = {r for r, a in vec.items() if actions.values[a] == ("local",)}
    succ: dict[str, list[str]] = {}
    ends: dict[str, list[str]] = {}
    for r, a in vec.items():
        act = actions.values[a]
        if act[0] == "fwd" and all(via is not None for via, _, _ in act[1]):
            # Next hops by address do not depend on the class: resolve once per (router, action).
            got = snap.resolved.get((r, a))
            if got is None:
                got = snap.resolved[(r, a)] = _hops(snap, r, act, local_here)
            succ[r], ends[r] = got
        else:
            succ[r], ends[r] = _hops(snap, r, act, local_here)
    result: dict[str, frozenset[str]] = {}
    # Iterative Tarjan: components come out after every component they reach.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in sorted(vec):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            recurse = False
            nbrs = succ.get(v, [])
            while i < len(nbrs):
                w = nbrs[i]
                i += 1
                if w not in vec:
                    continue  # no entry there: a terminal, handled below
                if w not in index:
                    work.append((v, i))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                members = set(comp)
                outs: set[str] = set()
                cyclic = len(comp) > 1 or v in succ.get(v, [])
                if cyclic:
                    outs.add("loop@" + ",".join(sorted(comp)))
                for m in comp:
                    outs.update(ends[m])
                    for w in succ[m]:
                        if w in members:
                            continue
                        outs.update(result[w] if w in vec else (f"dropped@{w}:no route",))
                done = frozenset(outs)
                for m in comp:
                    result[m] = done
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return result


# --------------------------------------------------------------------------- diff

def _at_ingress(outcomes: frozenset[str], router: str) -> frozenset[str]:
    """'No route' at the ingress itself reads alike from every ingress, so it groups into one statement."""
    mark = f"dropped@{router}:no route"
    if mark not in outcomes:
        return outcomes
    return frozenset(INGRESS_DROP + "no route" if o == mark else o for o in outcomes)


def _ranges_text(version: int, ranges: list[tuple[int, int]]) -> list[str]:
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    out: list[str] = []
    for start, end in ranges:
        out.extend(str(n) for n in ipaddress.summarize_address_range(make(start), make(end - 1)))
    return out


def outcome_text(outcomes: Iterable[str]) -> str:
    """'delivered to leaf4', 'dropped at leaf3 (blackhole)', 'looping (spine1, leaf2)', joined by ' or '."""
    parts = []
    for o in sorted(outcomes):
        kind, _, rest = o.partition("@")
        if kind == "delivered":
            parts.append(f"delivered to {rest}")
        elif kind == "exits":
            parts.append(f"leaves the routers at {rest}")
        elif kind == "dropped":
            where, _, why = rest.partition(":")
            parts.append(f"dropped at {'the ingress' if where == 'ingress' else where} ({why})")
        elif kind == "loop":
            parts.append(f"looping ({rest.replace(',', ', ')})")
        else:
            parts.append(o)
    return " or ".join(parts) or "nothing"


def _has(outcomes: frozenset[str], kind: str) -> bool:
    return any(o.startswith(kind + "@") for o in outcomes)


def _kind(before: frozenset[str], after: frozenset[str]) -> str:
    if any(o.startswith("loop@") and o not in before for o in after):
        return "loop"
    if _has(after, "dropped") and not _has(before, "dropped") and (_has(before, "delivered") or _has(before, "exits")):
        return "blackhole"
    if not (_has(before, "delivered") or _has(before, "exits")) and (_has(after, "delivered") or _has(after, "exits")):
        return "gained"
    return "changed"


def _ingress_text(ingresses: list[str], routers: list[str]) -> str:
    if len(ingresses) == len(routers):
        return "from any router"
    missing = sorted(set(routers) - set(ingresses))
    if len(ingresses) > len(routers) / 2 and len(missing) <= 3:
        return f"from every router but {', '.join(missing)}"
    if len(ingresses) > 8:
        return f"from {len(ingresses)} routers ({', '.join(ingresses[:6])} and {len(ingresses) - 6} more)"
    return "from " + ", ".join(ingresses)


def witness_address(version: int, start: int, end: int) -> str:
    """An address inside [start, end): the first host address of a range larger than two."""
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return str(make(start + 1 if end - start > 2 else start))


def dataplane_diff(fib_before: dict[str, Any], fib_after: dict[str, Any]) -> DataplaneResult:
    """Every (ingress router, destination class) whose forwarding outcome changed, as statements."""
    t0 = time.monotonic()
    fibs = [fib_before, fib_after]
    routers = sorted(set(fib_before.get("nodes", {})) | set(fib_after.get("nodes", {})))
    n = len(routers)
    actions = _Interner()
    classes = _classes(fibs, routers, actions)
    snaps = [_prepare(f) for f in fibs]
    cache: list[dict[frozenset[tuple[str, int]], dict[str, frozenset[str]]]] = [{}, {}]
    grouped: dict[tuple[int, frozenset[str], frozenset[str]], list[str]] = {}
    looping = [0, 0]
    dropped = [0, 0]
    no_route = {r: frozenset({f"dropped@{r}:no route"}) for r in routers}
    for ci, cls in enumerate(classes):
        per_snap: list[dict[str, frozenset[str]]] = []
        for si in (0, 1):
            vec = {routers[slot - si * n]: act for slot, act in cls.vector.items() if si * n <= slot < (si + 1) * n}
            key = frozenset(vec.items())
            got = cache[si].get(key)
            if got is None:
                got = cache[si][key] = _outcomes(snaps[si], vec, actions)
            per_snap.append(got)
            # Counted per pair; routers without an entry drop at once.
            for o in got.values():
                looping[si] += _has(o, "loop")
                dropped[si] += _has(o, "dropped")
            dropped[si] += n - len(got)
        b, a = per_snap
        for r in set(b) | set(a):
            ob, oa = b.get(r, no_route[r]), a.get(r, no_route[r])
            if ob != oa:
                grouped.setdefault((ci, _at_ingress(ob, r), _at_ingress(oa, r)), []).append(r)
    # Same (ingresses, before, after) over several classes: one statement.
    statements: dict[tuple[tuple[str, ...], frozenset[str], frozenset[str]], list[int]] = {}
    for (ci, ob, oa), ingresses in grouped.items():
        statements.setdefault((tuple(sorted(ingresses)), ob, oa), []).append(ci)
    changed = []
    for (ingresses, ob, oa), cis in sorted(statements.items(), key=lambda kv: (
            min(classes[c].version for c in kv[1]), min(classes[c].ranges[0][0] for c in kv[1]), kv[0][0])):
        ranges: list[str] = []
        first = classes[min(cis, key=lambda c: (classes[c].version, classes[c].ranges[0][0]))]
        for c in sorted(cis, key=lambda c: (classes[c].version, classes[c].ranges[0][0])):
            ranges.extend(_ranges_text(classes[c].version, classes[c].ranges))
        kind = _kind(ob, oa)
        shown = ", ".join(ranges[:MAX_RANGES_SHOWN]) + (
            f" and {len(ranges) - MAX_RANGES_SHOWN} more range(s)" if len(ranges) > MAX_RANGES_SHOWN else "")
        text = (f"{_ingress_text(list(ingresses), routers)}, {shown} now {outcome_text(oa)} "
                f"(was {outcome_text(ob)})")
        changed.append({"kind": kind, "family": f"ipv{first.version}", "ranges": ranges,
                        "ingresses": list(ingresses), "before": sorted(ob), "after": sorted(oa), "text": text,
                        "witness_address": witness_address(first.version, *first.ranges[0])})
    pairs = len(classes) * n
    return DataplaneResult(
        classes=len(classes), ingresses=n, pairs_checked=pairs, changed=changed,
        loops=[s for s in changed if s["kind"] == "loop"], blackholes=[s for s in changed if s["kind"] == "blackhole"],
        pairs_looping={"before": looping[0], "after": looping[1]},
        pairs_dropped={"before": dropped[0], "after": dropped[1]},
        seconds=round(time.monotonic() - t0, 3))


# --------------------------------------------------------------------------- witness

def witness_expectation(outcomes: list[str]) -> str | None:
    """What one ping should show for a computed outcome set: reply | ttl_exceeded | no_reply | None.

    None: a ping cannot tell (traffic leaves the routers where no host answers, or ECMP branches
    end differently, so one packet's hash decides).
    """
    kinds = {o.partition("@")[0] for o in outcomes}
    if kinds == {"delivered"}:
        return "reply"
    if kinds == {"loop"}:
        return "ttl_exceeded"
    if kinds == {"dropped"}:
        return "no_reply"
    return None


def witness_judge(expected: str | None, probe: dict[str, Any]) -> tuple[str, str]:
    """(agree | disagree | inconclusive, why) for one probe against the computed outcome."""
    seen = "reply" if probe.get("replied") else "ttl_exceeded" if probe.get("ttl_exceeded") else "no_reply"
    if expected is None:
        return "inconclusive", f"the packet saw {seen}; the computed outcome cannot be told apart by one ping"
    if seen == expected:
        return "agree", f"the packet saw {seen}, as computed"
    if seen == "reply":
        why = ("a reply came back although the FIBs say it is not delivered: the computation is wrong "
               "(or the tables changed after they were read)")
    elif expected == "reply":
        why = ("no reply although the FIBs deliver it: the twin's forwarding or the return path to the "
               "ingress disagrees with the computed forward path")
    else:
        why = f"the packet saw {seen}, the FIBs say {expected}: the computation or the twin is wrong"
    return "disagree", why


def witness_plan(changed: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """One probe per statement (the first ingress, an address in the first range), at most `limit`."""
    plan = []
    for s in changed[:limit]:
        expected = witness_expectation(s["after"])
        on_loop = {r for o in s["after"] if o.startswith("loop@") for r in o[5:].split(",")}
        # Linux drops a packet that comes back to the router that sent it (martian source), so
        # a loop is witnessed from an ingress outside it; from inside it shows only as no reply.
        outside = [r for r in s["ingresses"] if r not in on_loop]
        ingress = outside[0] if outside else s["ingresses"][0]
        note = ""
        if on_loop and not outside:
            expected, note = None, "every ingress is on the loop: its own packet is dropped when it returns"
        plan.append({"statement": s["text"], "kind": s["kind"], "from": ingress, "address": s["witness_address"],
                     "expected": expected, "note": note})
    return plan
