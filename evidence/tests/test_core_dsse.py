"""DSSE envelopes: PAE test vector, signing, and every way a verification must fail."""

import base64

import pytest

from evidence.core.dsse import SignatureError, b64decode_any, dsse_sign, dsse_verify, pae
from evidence.core.keys import SigningKey

PTYPE = "application/vnd.in-toto+json"


def test_pae_matches_the_dsse_spec_vector():
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters():
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"


@pytest.fixture
def key():
    return SigningKey.generate()


def test_sign_then_verify_returns_the_body(key):
    env = dsse_sign(PTYPE, b'{"a":1}', key)
    assert env["signatures"][0]["keyid"] == key.keyid
    assert dsse_verify(env, {key.keyid: key.public_key}, payload_type=PTYPE) == b'{"a":1}'


def test_url_safe_base64_is_accepted(key):
    env = dsse_sign(PTYPE, b"\xfb\xff" * 10, key)
    env["payload"] = base64.urlsafe_b64encode(b"\xfb\xff" * 10).decode().rstrip("=")
    assert dsse_verify(env, {key.keyid: key.public_key}) == b"\xfb\xff" * 10


def test_changed_payload_fails(key):
    env = dsse_sign(PTYPE, b'{"verdict":"blocked"}', key)
    env["payload"] = base64.b64encode(b'{"verdict":"ship_ready"}').decode()
    with pytest.raises(SignatureError, match="no trusted key"):
        dsse_verify(env, {key.keyid: key.public_key})


def test_changed_payload_type_fails(key):
    env = dsse_sign(PTYPE, b"{}", key)
    env["payloadType"] = "application/json"
    with pytest.raises(SignatureError):
        dsse_verify(env, {key.keyid: key.public_key})


def test_signature_by_an_untrusted_key_fails(key):
    stranger = SigningKey.generate()
    env = dsse_sign(PTYPE, b"{}", stranger)
    env["signatures"][0]["keyid"] = key.keyid  # claiming to be the site key changes nothing
    with pytest.raises(SignatureError):
        dsse_verify(env, {key.keyid: key.public_key})


def test_relabelled_signature_fails_even_though_the_key_is_trusted(key):
    other = SigningKey.generate()
    env = dsse_sign(PTYPE, b"{}", key)
    env["signatures"][0]["keyid"] = other.keyid
    with pytest.raises(SignatureError, match="labelled"):
        dsse_verify(env, {key.keyid: key.public_key, other.keyid: other.public_key})


def test_swapped_signature_from_another_envelope_fails(key):
    a = dsse_sign(PTYPE, b'{"n":1}', key)
    b = dsse_sign(PTYPE, b'{"n":2}', key)
    a["signatures"] = b["signatures"]
    with pytest.raises(SignatureError):
        dsse_verify(a, {key.keyid: key.public_key})


def test_threshold_counts_distinct_trusted_keys(key):
    approver = SigningKey.generate()
    env = dsse_sign(PTYPE, b"{}", key)
    env["signatures"] += dsse_sign(PTYPE, b"{}", approver)["signatures"]
    trusted = {key.keyid: key.public_key, approver.keyid: approver.public_key}
    assert dsse_verify(env, trusted, threshold=2) == b"{}"
    # The same signature twice is still one key.
    env["signatures"] = [env["signatures"][0], env["signatures"][0]]
    with pytest.raises(SignatureError, match="1 of 2"):
        dsse_verify(env, trusted, threshold=2)


def test_unknown_cosigner_is_ignored_unless_strict(key):
    stranger = SigningKey.generate()
    env = dsse_sign(PTYPE, b"{}", key)
    env["signatures"] += dsse_sign(PTYPE, b"{}", stranger)["signatures"]
    assert dsse_verify(env, {key.keyid: key.public_key}) == b"{}"
    with pytest.raises(SignatureError, match="no trusted key"):
        dsse_verify(env, {key.keyid: key.public_key}, strict=True)


def test_wrong_payload_type_expectation_fails(key):
    env = dsse_sign("application/json", b"{}", key)
    with pytest.raises(SignatureError, match="payloadType"):
        dsse_verify(env, {key.keyid: key.public_key}, payload_type=PTYPE)


@pytest.mark.parametrize(
    "envelope",
    [
        None,
        {},
        {"payload": "e30=", "payloadType": PTYPE},
        {"payload": "e30=", "payloadType": PTYPE, "signatures": []},
        {"payload": "!!!", "payloadType": PTYPE, "signatures": [{"sig": "AA=="}]},
    ],
)
def test_malformed_envelopes_fail_with_a_reason(key, envelope):
    with pytest.raises(SignatureError):
        dsse_verify(envelope, {key.keyid: key.public_key})


def test_b64decode_any_rejects_garbage():
    assert b64decode_any("aGk") == b"hi"
    with pytest.raises(SignatureError):
        b64decode_any("a$b")
