"""The profiler's throughput next to a plain, un-instrumented loop of the same iterations (not a test).

For every sample, in its own process (samples share sibling-module names such as ``model``), rounds
alternate between (a) the throughput phase exactly as a profile runs it and (b) a plain loop that runs
the same number of iterations and divides the wall time by their count (with one synchronisation at the
end on CUDA).  Medians over the rounds, printed with their ratio: 1.00 means the profiler's number is
the number a user's own stopwatch would give.  Usage: ``python benchmarks/throughput_vs_plain.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


def measure_one(entry: str, rounds: int) -> dict[str, float]:
    from skyline_tui.config import ProfileConfig
    from skyline_tui.profiler.entry import load_entry_point
    from skyline_tui.profiler.run import load_workload, measure_throughput
    from skyline_tui.profiler.timing import synchronize

    ep = load_entry_point(entry)
    work = load_workload(ep, ep.default_batch_size)
    config = ProfileConfig()
    profiler_ms, plain_ms = [], []
    for _ in range(rounds):
        result = measure_throughput(work, config)
        profiler_ms.append(result.iteration_ms)
        count = max(result.iterations_measured, 5)
        synchronize(work.device)
        start = time.perf_counter()
        for _ in range(count):
            work.run()
        synchronize(work.device)
        plain_ms.append((time.perf_counter() - start) * 1000 / count)
    return {"profiler_ms": statistics.median(profiler_ms), "plain_ms": statistics.median(plain_ms),
            "batch_size": work.batch_size, "device": str(work.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.rounds)))
        return
    print(f"{'sample':<12} {'device':<6} {'batch':>5} {'profiler ms':>12} {'plain ms':>10} {'ratio':>6}")
    for entry in sorted(SAMPLES.glob("*/entry.py")):
        out = subprocess.run([sys.executable, __file__, "--one", str(entry), "--rounds", str(args.rounds)],
                             capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO),
                                                                             **_env()})
        if out.returncode != 0:
            print(f"{entry.parent.name:<12} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{entry.parent.name:<12} {r['device']:<6} {r['batch_size']:>5} {r['profiler_ms']:>12.3f} "
              f"{r['plain_ms']:>10.3f} {r['profiler_ms'] / r['plain_ms']:>6.2f}")


def _env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


if __name__ == "__main__":
    main()
