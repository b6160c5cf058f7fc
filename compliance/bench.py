"""Benchmark of the compliance core: prints figures, asserts nothing.

    .venv/bin/python -m compliance.bench [--runs N]

Measures loading the data files, `controls_for` over all ten frameworks, the OSCAL build and its
validation against the official schema, and peak Python memory of one full export.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    from compliance import catalogues, crosswalk, oscal
    from compliance.tests.results import clean_result, sealed_bundle

    start = time.perf_counter()
    catalogues.catalogues_load.cache_clear()
    crosswalk._crosswalk.cache_clear()
    frameworks = list(catalogues.catalogues_load())
    crosswalk._crosswalk()
    load_ms = (time.perf_counter() - start) * 1000

    result = clean_result()
    rows = crosswalk.controls_for(result, frameworks, seal=True)
    bundle = sealed_bundle(result, rows, frameworks)

    start = time.perf_counter()
    oscal.oscal_errors({"assessment-results": {}})  # builds the validator once (schema parse)
    validator_ms = (time.perf_counter() - start) * 1000

    map_ms = _median_ms(lambda: crosswalk.controls_for(result, frameworks, seal=True), args.runs)
    build_ms = _median_ms(lambda: oscal.assessment_results(bundle, rows), args.runs)
    doc = oscal.assessment_results(bundle, rows)
    validate_ms = _median_ms(lambda: oscal.oscal_errors(doc), max(5, args.runs // 5))

    tracemalloc.start()
    oscal.oscal_check(oscal.assessment_results(bundle, crosswalk.controls_for(result, frameworks, seal=True)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    findings = sum(len(r.get("findings", [])) for r in doc["assessment-results"]["results"])
    print(f"frameworks: {len(frameworks)}, crosswalk rows: {len(rows)}, OSCAL findings: {findings}")
    print(f"load catalogues + crosswalk (cold):      {load_ms:8.1f} ms")
    print(f"controls_for, all frameworks (median):   {map_ms:8.2f} ms")
    print(f"assessment_results build (median):       {build_ms:8.2f} ms")
    print(f"schema validator construction (once):    {validator_ms:8.1f} ms")
    print(f"OSCAL schema validation (median):        {validate_ms:8.1f} ms")
    print(f"OSCAL document size:                     {len(json.dumps(doc)) / 1024:8.1f} KiB")
    print(f"peak Python memory, one full export:     {peak / 1024 / 1024:8.2f} MiB")


if __name__ == "__main__":
    main()
