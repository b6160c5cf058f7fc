"""RFC 9162 Merkle hashing against the published vectors and the RFC's 7-leaf example."""

import pytest

from evidence.core.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The reference leaves and tree heads every CT implementation tests against.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
HASHES = [leaf_hash(d) for d in CT_LEAVES]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_reference_tree_heads(size):
    assert root(HASHES[:size]).hex() == CT_ROOTS[size]


def test_empty_tree_root_is_sha256_of_nothing():
    assert root([]) == EMPTY_ROOT


@pytest.mark.parametrize(
    "index, proof",
    [
        (
            0,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ],
)
def test_inclusion_proofs_match_the_reference_vectors(index, proof):
    assert [p.hex() for p in inclusion_proof(HASHES, index)] == proof
    assert verify_inclusion(HASHES[index], index, 8, [bytes.fromhex(p) for p in proof], root(HASHES))


class TestRfc9162SevenLeafExample:
    """RFC 9162 §2.1.5: the tree over d0..d6 and the proofs it lists, node by node."""

    leaves = [leaf_hash(bytes([i])) for i in range(7)]
    a, b, c, d, e, f, j = leaves
    g, h, i = node_hash(a, b), node_hash(c, d), node_hash(e, f)
    k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 - the RFC's names

    def test_root_is_k_l(self):
        assert root(self.leaves) == node_hash(self.k, self.l)

    @pytest.mark.parametrize("index, names", [(0, "bhl"), (3, "cgl"), (4, "fjk"), (6, "ik")])
    def test_inclusion_proofs(self, index, names):
        expected = [getattr(self, n) for n in names]
        assert inclusion_proof(self.leaves, index) == expected
        assert verify_inclusion(self.leaves[index], index, 7, expected, root(self.leaves))

    @pytest.mark.parametrize("old, names", [(3, "cdgl"), (4, "l"), (6, "ijk")])
    def test_consistency_proofs(self, old, names):
        expected = [getattr(self, n) for n in names]
        assert consistency_proof(self.leaves, old) == expected
        assert verify_consistency(old, 7, root(self.leaves[:old]), root(self.leaves), expected)


MANY = [leaf_hash(i.to_bytes(2, "big")) for i in range(21)]


@pytest.mark.parametrize("size", range(1, 22))
def test_every_inclusion_proof_verifies_and_any_change_fails(size):
    leaves, top = MANY[:size], root(MANY[:size])
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        assert verify_inclusion(leaves[index], index, size, proof, top)
        assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, top)
        # (The tree size itself is bound by the signed checkpoint, not by the proof: for some
        # indices a proof in size n has the same shape as in size n+1.)
        if proof:
            assert not verify_inclusion(leaves[index], index, size, proof[:-1], top)  # truncated
            assert not verify_inclusion(leaves[index], index, size, proof + [top], top)  # padded
            flipped = bytes([proof[0][0] ^ 1]) + proof[0][1:]
            assert not verify_inclusion(leaves[index], index, size, [flipped] + proof[1:], top)
        if size > 1:
            assert not verify_inclusion(leaves[index], (index + 1) % size, size, proof, top)


@pytest.mark.parametrize("new", range(1, 22))
def test_every_consistency_proof_verifies_and_a_rewritten_history_fails(new):
    for old in range(0, new + 1):
        proof = consistency_proof(MANY[:new], old)
        old_root, new_root = root(MANY[:old]), root(MANY[:new])
        assert verify_consistency(old, new, old_root, new_root, proof)
        if 0 < old < new:
            rewritten = root([leaf_hash(b"rewritten")] + MANY[1:old])
            assert not verify_consistency(old, new, rewritten, new_root, proof)
            assert not verify_consistency(old, new, old_root, new_root, proof[:-1])


def test_out_of_range_requests_are_errors_not_proofs():
    with pytest.raises(ValueError):
        inclusion_proof(MANY[:3], 3)
    with pytest.raises(ValueError):
        consistency_proof(MANY[:3], 4)
    assert not verify_inclusion(MANY[0], -1, 3, [], root(MANY[:3]))


def test_prefix_roots_equal_the_root_of_every_prefix():
    from evidence.core.merkle import prefix_roots

    assert prefix_roots(MANY) == [root(MANY[:n]) for n in range(1, len(MANY) + 1)]
    assert [r.hex() for r in prefix_roots(HASHES)] == CT_ROOTS[1:]
