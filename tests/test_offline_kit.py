"""The offline kit's signed manifest (deploy/kit_manifest.py) and install-offline.sh --verify-only.

Fast: a small kit made here, the real signing code (evidence/core/keys.py) and the real shell
script with openssl; no Docker. The whole kit, built and installed, is tests/test_airgap.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.kit_manifest import MANIFEST, SIGNATURE, kit_sign, kit_verify
from evidence.core.keys import SigningKey, signing_key_load_or_create

ROOT = Path(__file__).resolve().parent.parent
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    kit = tmp_path / "kit"
    (kit / "images").mkdir(parents=True)
    (kit / "images" / "aegis-images.tar").write_bytes(bytes(range(256)) * 64)
    (kit / "labs" / "triangle").mkdir(parents=True)
    (kit / "labs" / "triangle" / "r1.conf").write_text("hostname r1\n")
    (kit / "VERSION").write_text("test\n")
    shutil.copy(ROOT / "deploy" / "install-offline.sh", kit / "install-offline.sh")
    return kit


@pytest.fixture
def site_key(tmp_path: Path) -> tuple[Path, Path]:
    key_file = tmp_path / "keys" / "site_ed25519.pem"
    key = signing_key_load_or_create(key_file)
    pub = tmp_path / "trusted.pem"
    pub.write_text(key.public_pem())
    return key_file, pub


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_signed_kit_verifies(kit: Path, site_key: tuple[Path, Path]) -> None:
    key_file, pub = site_key
    kit_sign(kit, key_file)
    assert kit_verify(kit, pub.read_bytes()) == []
    listed = (kit / MANIFEST).read_text()
    assert "images/aegis-images.tar" in listed and "install-offline.sh" in listed


def test_one_changed_byte_anywhere_is_refused(kit: Path, site_key: tuple[Path, Path]) -> None:
    key_file, pub = site_key
    kit_sign(kit, key_file)
    flip_byte(kit / "images" / "aegis-images.tar", 9000)
    assert kit_verify(kit, pub.read_bytes()) == ["images/aegis-images.tar: sha256 differs from the signed manifest"]


def test_added_missing_files_and_a_changed_manifest_are_refused(kit: Path, site_key: tuple[Path, Path]) -> None:
    key_file, pub = site_key
    kit_sign(kit, key_file)
    (kit / "labs" / "evil.sh").write_text("curl x | sh\n")
    (kit / "VERSION").unlink()
    problems = kit_verify(kit, pub.read_bytes())
    assert "labs/evil.sh: not in the signed manifest" in problems
    assert "VERSION: listed but missing" in problems
    flip_byte(kit / MANIFEST, 3)
    assert "signature does not verify" in kit_verify(kit, pub.read_bytes())[0]


def test_a_kit_signed_by_another_key_is_refused(kit: Path, site_key: tuple[Path, Path], tmp_path: Path) -> None:
    _, pub = site_key
    other = tmp_path / "other.pem"
    other.write_bytes(SigningKey.generate().private_pem())
    other.chmod(0o600)
    kit_sign(kit, other)  # a kit whose manifest is consistent, but not the site's signature
    assert "signature does not verify" in kit_verify(kit, pub.read_bytes())[0]


@needs_openssl
def test_install_offline_verify_only_with_openssl(kit: Path, site_key: tuple[Path, Path]) -> None:
    """The shell script checks the same signature with openssl (no Python on the far side)."""
    key_file, pub = site_key
    kit_sign(kit, key_file)
    script = [str(kit / "install-offline.sh"), "--verify-only", "--trusted-key", str(pub)]
    ok = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "kit verified" in ok.stdout

    flip_byte(kit / "labs" / "triangle" / "r1.conf", 0)
    bad = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "REFUSED" in bad.stderr and "labs/triangle/r1.conf" in bad.stderr
    flip_byte(kit / "labs" / "triangle" / "r1.conf", 0)

    (kit / "extra.txt").write_text("x")
    extra = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert extra.returncode == 1 and "extra.txt" in extra.stderr
    (kit / "extra.txt").unlink()

    sig = (kit / SIGNATURE).read_bytes()
    (kit / SIGNATURE).write_bytes(sig[:-1] + bytes([sig[-1] ^ 1]))
    forged = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert forged.returncode == 1 and "signature does not verify" in forged.stderr


@needs_openssl
def test_install_offline_without_a_trusted_key_says_how_to_get_one(kit: Path, site_key: tuple[Path, Path]) -> None:
    key_file, _ = site_key
    keyid = kit_sign(kit, key_file)
    run = subprocess.run(
        [str(kit / "install-offline.sh"), "--verify-only", "--trusted-key", str(kit / "nope.pem")],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2
    # The id printed by the shell (openssl) is the evidence tooling's key id.
    assert keyid in run.stderr


def test_wheel_requirements_from_lock() -> None:
    from deploy.wheel_requirements import requirements_from_lock

    lock = "ab" * 32 + "  Django-5.2.19-py3-none-any.whl\n" + "cd" * 32 + "  rfc8785-0.1.4-py3-none-any.whl\n"
    assert requirements_from_lock(lock) == [
        f"Django==5.2.19 --hash=sha256:{'ab' * 32}",
        f"rfc8785==0.1.4 --hash=sha256:{'cd' * 32}",
    ]


def test_wheel_platforms_from_lock() -> None:
    from deploy.wheel_requirements import platforms_from_lock

    lock = (
        "ab" * 32 + "  cryptography-46.0.3-cp311-abi3-manylinux_2_34_x86_64.whl\n"
        + "cd" * 32 + "  PyYAML-6.0.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl\n"
        + "ef" * 32 + "  rfc8785-0.1.4-py3-none-any.whl\n"
    )
    assert platforms_from_lock(lock) == ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_34_x86_64"]
    with pytest.raises(ValueError):
        platforms_from_lock("ab" * 32 + "  not-a-wheel.tar.gz\n")


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def test_committed_locks_cover_the_pins() -> None:
    """deploy/wheels.lock and deploy/debian-packages.lock are the image's inputs: every pin is in
    them at its pinned version, with a sha256 — and the wheels were resolved for the image's
    Python (Debian's 3.11.2), not the build host's."""
    from deploy.wheel_requirements import _entries, _tags

    wheels = {}
    for digest, filename in _entries((ROOT / "deploy" / "wheels.lock").read_text()):
        name, version = _tags(filename)[:2]
        assert len(digest) == 64 and int(digest, 16) >= 0, filename
        wheels[_norm(name)] = version
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        spec = line.split("#")[0].strip()
        if spec:
            name, version = spec.split("==")
            name = name.split("[")[0]
            assert wheels.get(_norm(name)) == version.strip(), f"{spec} is not in deploy/wheels.lock"
    # redis needs async-timeout where python_full_version < "3.11.3": Debian bookworm's 3.11.2.
    assert "async_timeout" in wheels, "the wheels were resolved for another Python than the image's"

    debs = {}
    for line in (ROOT / "deploy" / "debian-packages.lock").read_text().splitlines():
        name, version, arch, digest = line.split()
        assert len(digest) == 64 and arch in ("amd64", "all"), line
        debs[name] = version
    for line in (ROOT / "deploy" / "debian-packages.txt").read_text().splitlines():
        pin = line.split("#")[0].strip()
        if pin:
            name, version = pin.split("=", 1)
            assert debs.get(name) == version, f"{pin} is not in deploy/debian-packages.lock"
