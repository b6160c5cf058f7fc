"""The site key file and the trusted keyring."""

import os
import stat

import pytest

from evidence.core.keys import (
    KeyFileError,
    SigningKey,
    keyid_of,
    keyring_add,
    keyring_load,
    public_key_from_pem,
    signing_key_load,
    signing_key_load_or_create,
    signing_key_rotate,
)


def test_first_use_creates_a_key_only_its_owner_can_read(tmp_path):
    path = tmp_path / "keys" / "site.pem"
    key = signing_key_load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.keyid == keyid_of(key.public_key)
    # Second use loads the same key instead of making a new one.
    assert signing_key_load_or_create(path).keyid == key.keyid
    assert [p.name for p in path.parent.iterdir()] == ["site.pem"]  # no temp file left


def test_keyid_is_recomputable_from_the_public_key_alone(tmp_path):
    key = SigningKey.generate()
    again = public_key_from_pem(key.public_pem())
    assert keyid_of(again) == key.keyid
    assert len(key.keyid) == 32


def test_a_key_file_readable_by_others_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "site.pem"
    signing_key_load_or_create(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        signing_key_load(path)


def test_garbage_and_wrong_key_types_are_refused(tmp_path):
    path = tmp_path / "site.pem"
    path.write_text("not a key")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        signing_key_load(path)
    with pytest.raises(KeyFileError, match="no such key file"):
        signing_key_load(tmp_path / "missing.pem")
    with pytest.raises(KeyFileError):
        public_key_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_rotation_keeps_the_old_public_key_trusted(tmp_path):
    path = tmp_path / "site.pem"
    ring = tmp_path / "trusted"
    first = signing_key_load_or_create(path)
    old, new = signing_key_rotate(path, ring)
    assert old.keyid == first.keyid
    assert new.keyid != old.keyid
    assert signing_key_load(path).keyid == new.keyid
    assert set(keyring_load(ring)) == {old.keyid, new.keyid}
    retired = [p for p in tmp_path.iterdir() if ".retired-" in p.name]
    assert len(retired) == 1 and stat.S_IMODE(retired[0].stat().st_mode) == 0o600


def test_keyring_add_is_idempotent_and_keyed_by_content(tmp_path):
    key = SigningKey.generate()
    keyring_add(tmp_path, key.public_key)
    keyring_add(tmp_path, key.public_key)
    # A misleading file name does not change the key id it is filed under.
    (tmp_path / "someone-else.pem").write_text(SigningKey.generate().public_pem())
    ring = keyring_load(tmp_path)
    assert key.keyid in ring and len(ring) == 2
