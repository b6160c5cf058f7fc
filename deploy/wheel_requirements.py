"""Turn deploy/wheels.lock (sha256sum lines over wheel files) into a pip --require-hashes file.

pip installs inside the image build with --no-index from the wheelhouse; --require-hashes makes
it refuse any wheel whose digest is not the locked one.
"""

from __future__ import annotations

import sys
from pathlib import Path


def requirements_from_lock(lock_text: str) -> list[str]:
    lines = []
    for raw in lock_text.splitlines():
        if not raw.strip():
            continue
        digest, filename = raw.split(None, 1)
        filename = filename.lstrip("*")
        # A wheel file name is {name}-{version}-{python}-{abi}-{platform}.whl (PEP 427).
        name, version = filename.split("-")[:2]
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
    return lines


if __name__ == "__main__":
    print("\n".join(requirements_from_lock(Path(sys.argv[1]).read_text())))
