"""The health phase's iterations next to plain iterations of the same fresh model (not a test).

For every sample, in its own process (samples share sibling-module names such as ``model``), one fresh
workload is built as the health phase builds it, and rounds alternate, order swapped each round (A B, B A):
(a) ``--iterations`` iterations under the publisher, each ended by ``end_iteration`` (its one host sync),
(b) the same number of plain iterations with one synchronisation at the end.  Medians over the rounds of
the per-iteration time, and their ratio (goal: at most 1.5).  Usage:
``python benchmarks/health_overhead.py [--rounds 5] [--iterations 10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


def measure_one(entry: str, rounds: int, iterations: int, threads: int) -> dict[str, object]:
    import torch

    from skyline_tui.profiler.entry import load_entry_point
    from skyline_tui.profiler.health.publisher import Publisher
    from skyline_tui.profiler.timing import synchronize
    from skyline_tui.profiler.workload import load_workload

    if threads:  # on a shared machine, intra-op threads fighting other jobs swamp the difference
        torch.set_num_threads(threads)
    ep = load_entry_point(entry)
    work = load_workload(ep, ep.default_batch_size)
    publisher = Publisher(work.model, ep.files, wanted_kinds=set())

    def health() -> float:
        synchronize(work.device)
        start = time.perf_counter()
        with publisher:
            for _ in range(iterations):
                publisher.start_iteration()
                publisher.run(work.run)
                publisher.end_iteration()
        return (time.perf_counter() - start) * 1000 / iterations

    def plain() -> float:
        synchronize(work.device)
        start = time.perf_counter()
        for _ in range(iterations):
            work.run()
        synchronize(work.device)
        return (time.perf_counter() - start) * 1000 / iterations

    plain()  # warm-up: the first iterations pay for allocator and kernel caches
    health_ms, plain_ms = [], []
    for i in range(rounds):
        order = (health, plain) if i % 2 == 0 else (plain, health)
        for case in order:
            (health_ms if case is health else plain_ms).append(case())
    return {"health_ms": statistics.median(health_ms), "plain_ms": statistics.median(plain_ms),
            "batch_size": work.batch_size, "device": str(work.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.rounds, args.iterations, args.threads)))
        return
    print(f"{'sample':<12} {'device':<6} {'batch':>5} {'health ms':>10} {'plain ms':>10} {'ratio':>6}")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for entry in sorted(SAMPLES.glob("*/entry.py")):
        out = subprocess.run([sys.executable, __file__, "--one", str(entry), "--rounds", str(args.rounds),
                              "--iterations", str(args.iterations), "--threads", str(args.threads)],
                             capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO), **env})
        if out.returncode != 0:
            print(f"{entry.parent.name:<12} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{entry.parent.name:<12} {r['device']:<6} {r['batch_size']:>5} {r['health_ms']:>10.3f} "
              f"{r['plain_ms']:>10.3f} {r['health_ms'] / r['plain_ms']:>6.2f}")


if __name__ == "__main__":
    main()
