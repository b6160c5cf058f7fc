"""C2SP checkpoints (signed notes) and the offline tlog-proof file."""

import base64

import pytest

from evidence.core.checkpoint import (
    CheckpointError,
    checkpoint_parse,
    checkpoint_sign,
    checkpoint_verify,
    note_key_id,
    tlog_proof_format,
    tlog_proof_parse,
)
from evidence.core.keys import SigningKey
from evidence.core.merkle import inclusion_proof, leaf_hash, root, verify_inclusion

ORIGIN = "aegis.test/ledger"
ROOT = bytes(range(32))


@pytest.fixture
def key():
    return SigningKey.generate()


def test_signed_note_has_the_c2sp_layout(key):
    note = checkpoint_sign(ORIGIN, 7, ROOT, key)
    body, sig_line = note.split("\n\n")
    assert body == f"{ORIGIN}\n7\n{base64.b64encode(ROOT).decode()}"
    dash, name, blob = sig_line.rstrip("\n").split(" ")
    assert dash == "\u2014" and name == ORIGIN
    raw = base64.b64decode(blob)
    assert raw[:4] == note_key_id(ORIGIN, key.public_key) and len(raw) == 68


def test_verify_returns_the_checkpoint(key):
    cp = checkpoint_verify(checkpoint_sign(ORIGIN, 7, ROOT, key), [key.public_key], origin=ORIGIN)
    assert (cp.origin, cp.size, cp.root_hash, cp.verified_by) == (ORIGIN, 7, ROOT, (ORIGIN,))


def test_a_changed_size_or_root_fails(key):
    note = checkpoint_sign(ORIGIN, 7, ROOT, key)
    with pytest.raises(CheckpointError, match="does not verify"):
        checkpoint_verify(note.replace("\n7\n", "\n8\n", 1), [key.public_key])
    other_root = base64.b64encode(bytes(32)).decode()
    with pytest.raises(CheckpointError, match="does not verify"):
        checkpoint_verify(note.replace(base64.b64encode(ROOT).decode(), other_root), [key.public_key])


def test_an_unknown_key_alone_is_not_enough_but_is_ignored_beside_a_known_one(key):
    stranger = SigningKey.generate()
    note = checkpoint_sign(ORIGIN, 1, ROOT, stranger)
    with pytest.raises(CheckpointError, match="no trusted key"):
        checkpoint_verify(note, [key.public_key])
    # A witness line by someone we do not know does not spoil a good checkpoint.
    mine = checkpoint_sign(ORIGIN, 1, ROOT, key)
    both = mine + note.split("\n\n")[1]
    assert checkpoint_verify(both, [key.public_key]).size == 1


def test_wrong_origin_is_refused(key):
    with pytest.raises(CheckpointError, match="origin"):
        checkpoint_verify(checkpoint_sign(ORIGIN, 1, ROOT, key), [key.public_key], origin="other/log")


@pytest.mark.parametrize(
    "text", ["", "a\n1\nAA==\n", "a\n01\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 a AAAAAAA=\n"]
)
def test_malformed_notes_are_refused(text):
    with pytest.raises(CheckpointError):
        checkpoint_parse(text)


def test_tlog_proof_round_trips_and_verifies(key):
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    note = checkpoint_sign(ORIGIN, 5, root(leaves), key)
    text = tlog_proof_format(3, inclusion_proof(leaves, 3), note)
    assert text.startswith("c2sp.org/tlog-proof@v1\nindex 3\n")
    index, proof, cp_note = tlog_proof_parse(text)
    cp = checkpoint_verify(cp_note, [key.public_key])
    assert verify_inclusion(leaves[3], index, cp.size, proof, cp.root_hash)


@pytest.mark.parametrize(
    "bad", ["nope\nindex 1\n\n", "c2sp.org/tlog-proof@v1\n\n", "c2sp.org/tlog-proof@v1\nindex 1\n!!\n\n"]
)
def test_malformed_proof_files_are_refused(bad):
    with pytest.raises(CheckpointError):
        tlog_proof_parse(bad)


def test_a_witness_cosignature_round_trips_and_binds_the_checkpoint(key):
    from evidence.core.checkpoint import cosignature_sign, cosignature_verify

    witness = SigningKey.generate()
    note = checkpoint_sign(ORIGIN, 7, ROOT, key)
    line = cosignature_sign(note, witness, "audit.example/witness", 1764100000)
    assert cosignature_verify(note, line, "audit.example/witness", witness.public_key) == 1764100000
    # The log's own verifier ignores the witness line (unknown key) and still accepts the note.
    assert checkpoint_verify(note + line, [key.public_key]).size == 7
    other = checkpoint_sign(ORIGIN, 8, ROOT, key)
    with pytest.raises(CheckpointError, match="does not verify"):
        cosignature_verify(other, line, "audit.example/witness", witness.public_key)
    with pytest.raises(CheckpointError, match="not by witness key"):
        cosignature_verify(note, line, "audit.example/witness", SigningKey.generate().public_key)
    forged_time = line.split(" ")
    raw = bytearray(base64.b64decode(forged_time[2]))
    raw[11] ^= 1  # claim another time
    with pytest.raises(CheckpointError, match="does not verify"):
        cosignature_verify(note, " ".join(forged_time[:2] + [base64.b64encode(bytes(raw)).decode()]) + "\n",
                           "audit.example/witness", witness.public_key)  # fmt: skip
