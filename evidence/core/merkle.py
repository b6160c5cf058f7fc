"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, inclusion and consistency proofs.

Leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right): the prefixes
keep a leaf from ever being passed off as an inner node. Trees are given as the list of
leaf *hashes* (that is what the ledger stores); `leaf_hash` turns data into one.
The proof builders follow RFC 9162 §2.1.3.1 / §2.1.4.1 (PATH and SUBPROOF), the verifiers
follow the step lists of §2.1.3.2 / §2.1.4.2 word for word, so they can be read side by side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[lo]
    k = _split(n)
    return node_hash(_mth(leaves, lo, lo + k), _mth(leaves, lo + k, hi))


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes (SHA-256 of the empty string for no leaves)."""
    return _mth(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]): sibling hashes from the leaf up to (not including) the root."""
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"leaf index {index} outside a tree of size {len(leaf_hashes)}")

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return path(m, lo, lo + k) + [_mth(leaf_hashes, lo + k, hi)]
        return path(m - k, lo + k, hi) + [_mth(leaf_hashes, lo, lo + k)]

    return path(index, 0, len(leaf_hashes))


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `leaf` sit at `index` of the tree with `root_hash`?"""
    if index < 0 or index >= tree_size:
        return False
    fn, sn = index, tree_size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) for m = old_size, n = len(leaf_hashes); empty when m is 0 or n."""
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} outside 0..{n}")
    if old_size in (0, n):
        return []

    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        size = hi - lo
        if m == size:
            return [] if complete else [_mth(leaf_hashes, lo, hi)]
        k = _split(size)
        if m <= k:
            return subproof(m, lo, lo + k, complete) + [_mth(leaf_hashes, lo + k, hi)]
        return subproof(m - k, lo + k, hi, False) + [_mth(leaf_hashes, lo, lo + k)]

    return subproof(old_size, 0, n, True)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of `new_root` an append-only extension of `old_root`?"""
    if old_size < 0 or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        # Every tree extends the empty tree; there is nothing to prove.
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # exact power of two: the old root is itself a node
        path = [old_root] + path
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def prefix_roots(leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Roots of the trees of size 1..n in one pass (O(n log n)), for checking every checkpoint.

    Keeps the right edge of the tree: the roots of the perfect subtrees that make up the
    current size, largest first; folding them right to left gives MTH of that prefix.
    """
    edge: list[tuple[int, bytes]] = []  # (subtree size, hash)
    roots: list[bytes] = []
    for leaf in leaf_hashes:
        size, h = 1, leaf
        while edge and edge[-1][0] == size:
            left_size, left = edge.pop()
            size, h = left_size + size, node_hash(left, h)
        edge.append((size, h))
        acc = edge[-1][1]
        for _, left in reversed(edge[:-1]):
            acc = node_hash(left, acc)
        roots.append(acc)
    return roots
