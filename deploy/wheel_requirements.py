"""Turn deploy/wheels.lock (sha256sum lines over wheel files) into pip input.

  wheel_requirements.py LOCK               a pip --require-hashes file: name==version --hash=...
  wheel_requirements.py --platforms LOCK   the --platform options that admit every locked file

pip installs inside the image build with --no-index from the wheelhouse; --require-hashes makes
it refuse any wheel whose digest is not the locked one. On the build side, a cold cache fetches
the locked files with `pip download --no-deps --require-hashes` and the platform tags of those
very files, so no environment marker is evaluated on the build host.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _entries(lock_text: str) -> list[tuple[str, str]]:
    out = []
    for raw in lock_text.splitlines():
        if not raw.strip():
            continue
        digest, filename = raw.split(None, 1)
        out.append((digest, filename.strip().lstrip("*")))
    return out


def _tags(filename: str) -> tuple[str, str, str, str, str]:
    # {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl (PEP 427)
    if not filename.endswith(".whl"):
        raise ValueError(f"not a wheel file name: {filename}")
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        raise ValueError(f"not a wheel file name: {filename}")
    return parts[0], parts[1], parts[-3], parts[-2], parts[-1]


def requirements_from_lock(lock_text: str) -> list[str]:
    lines = []
    for digest, filename in _entries(lock_text):
        name, version = _tags(filename)[:2]
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
    return lines


def platforms_from_lock(lock_text: str) -> list[str]:
    """Every platform tag of the locked binary wheels (compressed tag sets split), sorted."""
    plats: set[str] = set()
    for _, filename in _entries(lock_text):
        for plat in _tags(filename)[4].split("."):
            if plat != "any":
                plats.add(plat)
    return sorted(plats)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--platforms":
        print(" ".join(f"--platform {p}" for p in platforms_from_lock(Path(sys.argv[2]).read_text())))
    elif len(sys.argv) == 2:
        print("\n".join(requirements_from_lock(Path(sys.argv[1]).read_text())))
    else:
        sys.exit("usage: wheel_requirements.py [--platforms] LOCK")
