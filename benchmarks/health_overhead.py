"""The health phase's iterations next to plain iterations of the same fresh model (not a test).

For every sample, in its own process (samples share sibling-module names such as ``model``), one fresh
workload is built as the health phase builds it, and rounds alternate, order swapped each round (A B, B A):
(a) ``--iterations`` iterations under the publisher, each ended by ``end_iteration`` (its one host sync),
(b) the same number of plain iterations with one synchronisation at the end.  Medians over the rounds of
the per-iteration time, their ratio, and the median of each round's own ratio (health over the plain
iterations measured next to it: steadier when the machine's speed drifts; goal: at most 1.5).

``--baseline PATH`` measures another checkout's health phase (``/work/main``, say) the same way, its
process and this one's alternating per sample, so a before/after comparison comes from one run.  Usage:
``python benchmarks/health_overhead.py [--rounds 5] [--iterations 10] [--threads 1] [--baseline PATH]
[--sample NAME]``.
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
from typing import Any

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
            "round_ratio": statistics.median(h / p for h, p in zip(health_ms, plain_ms)),
            "batch_size": work.batch_size, "device": str(work.device)}


def measure_in_process(code: Path, entry: Path, args: argparse.Namespace) -> dict[str, Any] | str:
    """One sample measured in a fresh process importing skyline_tui from ``code``: the result or why not."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    out = subprocess.run([sys.executable, __file__, "--one", str(entry), "--rounds", str(args.rounds),
                          "--iterations", str(args.iterations), "--threads", str(args.threads)],
                         capture_output=True, text=True, cwd=code, env={"PYTHONPATH": str(code), **env})
    if out.returncode != 0:
        return f"failed: {out.stderr.strip().splitlines()[-1:]}"
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--baseline", metavar="PATH", help="another checkout to measure alternately (before/after)")
    parser.add_argument("--sample", action="append", help="only this bundled sample (repeatable; default: all)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.rounds, args.iterations, args.threads)))
        return
    codes = [("baseline", Path(args.baseline).resolve()), ("this", REPO)] if args.baseline else [("this", REPO)]
    print(f"{'sample':<12} {'code':<9} {'device':<6} {'batch':>5} {'health ms':>10} {'plain ms':>10} {'ratio':>6} "
          f"{'per-round':>9}")
    entries = [e for e in sorted(SAMPLES.glob("*/entry.py")) if not args.sample or e.parent.name in args.sample]
    for i, entry in enumerate(entries):
        for name, code in codes if i % 2 == 0 else codes[::-1]:  # alternating which goes first
            r = measure_in_process(code, entry, args)
            if isinstance(r, str):
                print(f"{entry.parent.name:<12} {name:<9} {r}")
                continue
            health_ms, plain_ms = r["health_ms"], r["plain_ms"]
            print(f"{entry.parent.name:<12} {name:<9} {r['device']:<6} {r['batch_size']:>5} {health_ms:>10.3f} "
                  f"{plain_ms:>10.3f} {health_ms / plain_ms:>6.2f} {r['round_ratio']:>9.2f}")


if __name__ == "__main__":
    main()
