"""RFC 8785 canonical bytes: the exact bytes that are hashed and signed."""

import math

import pytest

from evidence.core.canonical import CanonicalError, canonical_bytes, digest_str, sha256_hex


def test_keys_are_sorted_and_whitespace_dropped():
    assert (
        canonical_bytes({"b": [1, 2], "a": {"d": None, "c": True}}) == b'{"a":{"c":true,"d":null},"b":[1,2]}'
    )


def test_numbers_take_the_es6_form():
    # RFC 8785 §3.2.2.3: 1.0 is written 1, 1e21 keeps the exponent.
    assert canonical_bytes([1.0, 1e21, 0.1, -0.0]) == b"[1,1e+21,0.1,0]"


def test_same_object_same_digest_whatever_the_key_order():
    assert sha256_hex(canonical_bytes({"x": 1, "y": 2})) == sha256_hex(canonical_bytes({"y": 2, "x": 1}))


def test_digest_str_has_the_algorithm_prefix():
    assert digest_str(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("bad", [math.nan, math.inf, {"k": object()}])
def test_values_without_a_canonical_form_are_refused(bad):
    with pytest.raises(CanonicalError):
        canonical_bytes(bad)
