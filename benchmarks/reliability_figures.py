"""The hostile-input and tamper figures of docs/reliability.md, printed (never asserted here).

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/reliability_figures.py [--seeds 17,18,19]

* the hostile corpus: cases per kind in tests/hostile/*.yml (each is one case of
  `pytest tests/hostile`, which checks its refusal, that nothing was written and nothing spawned);
* tamper detection: every byte of a sealed bundle XORed with a seeded non-zero value, verified
  with the standalone verifier; one sweep per seed (the test runs seed 17).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="17")
    args = ap.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")
    import django

    django.setup()
    total = 0
    for path in sorted((REPO / "tests" / "hostile").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        n = len(data["cases"])
        total += n
        print(f"hostile {data['kind']:13s} {n:4d} cases ({path.relative_to(REPO)})")
    print(f"hostile total         {total:4d} cases")

    from evidence.core.keys import SigningKey
    from evidence.tests.conftest import core_bundle, result_fixture
    from evidence.verify_standalone import verify_bytes

    site = SigningKey.generate()
    _bundle, data, _statement = core_bundle(result_fixture("needs_approval"), site,
                                            change_text="title: t\ndevices: {r3: 'ip route 10.9.0.0/24 Null0'}\n")
    trusted = {site.keyid: site.public_key}
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = random.Random(seed)
        t0 = time.monotonic()
        missed = 0
        for pos in range(len(data)):
            forged = bytearray(data)
            forged[pos] ^= rng.randrange(1, 256)
            if all(c.ok for c in verify_bytes(bytes(forged), trusted)):
                missed += 1
        detected = len(data) - missed
        print(f"tamper seed {seed}: {detected:,} of {len(data):,} byte flips detected "
              f"({100 * detected / len(data):.2f} %), {time.monotonic() - t0:.0f} s")
    print("load " + "/".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
