"""How much the run-time breakdown slows an iteration down, next to torch.profiler (not a test).

For every sample (each in its own process: samples share sibling-module names such as ``model``), in
one run and interleaved round by round so the machine's noise hits every variant alike:

- unprofiled: the plain iteration, timed like the throughput phase;
- breakdown: ``measure_breakdown`` (its profiled_iteration_ms, and its whole wall time: instrumented
  warm-up + measured iterations + building the rows);
- torch.profiler: the same iterations under ``torch.profiler.profile(with_stack=True)`` plus
  ``key_averages()``, the least it takes to get op times with Python stacks out of it.

Prints medians over the rounds.  Two clocks: wall time (what the report shows; on a shared machine it
swings with other processes) and this thread's CPU time with one intra-op thread (``--threads 1``, the
default), which preemption does not inflate, so its ratios are the instruments' real cost.
Then the same ratio as users get it, inside ``skyline-tui ENTRY --json`` reports (worker process, a run
child forked from it, default threads): median over ``--rounds`` runs per sample.
Usage: ``python benchmarks/breakdown_overhead.py [--rounds 5] [--threads N]``.
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


def measure_one(entry: str, rounds: int, iterations: int, threads: int) -> dict[str, float]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from skyline_tui.config import ProfileConfig
    from skyline_tui.profiler.breakdown import measure_breakdown
    from skyline_tui.profiler.entry import load_entry_point
    from skyline_tui.profiler.run import load_workload
    from skyline_tui.profiler.timing import synchronize, time_iterations, warm_up

    if threads:
        torch.set_num_threads(threads)
    ep = load_entry_point(entry)
    work = load_workload(ep, ep.default_batch_size)
    warm_up(work.run, work.device, 3, 0.5)
    # The process is warm already (and not a forked child): no time-based warm-up, so the breakdown's
    # wall and CPU time are its 1 + `iterations` instrumented iterations, like torch.profiler's below.
    config = ProfileConfig(breakdown_iterations=iterations, breakdown_warmup_s=0.0)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if work.device.type == "cuda" else [])
    plain, instrumented, ours_s, theirs_s = [], [], [], []
    plain_cpu, ours_cpu, theirs_cpu = [], [], []
    for _ in range(rounds):
        cpu = time.thread_time()
        plain.append(statistics.fmean(time_iterations(work.run, work.device, 1 + iterations)))
        plain_cpu.append(time.thread_time() - cpu)

        started, cpu = time.perf_counter(), time.thread_time()
        breakdown = measure_breakdown(work, config)  # 1 warm-up + `iterations` measured
        ours_s.append(time.perf_counter() - started)
        ours_cpu.append(time.thread_time() - cpu)
        instrumented.append(breakdown.profiled_iteration_ms)

        started, cpu = time.perf_counter(), time.thread_time()
        with profile(activities=activities, with_stack=True) as prof:
            for _ in range(1 + iterations):  # the same iterations as the breakdown
                work.run()
            synchronize(work.device)
        prof.key_averages()
        theirs_s.append(time.perf_counter() - started)
        theirs_cpu.append(time.thread_time() - cpu)
        del prof
    median = statistics.median
    return {"unprofiled_ms": median(plain), "profiled_ms": median(instrumented),
            "cpu_ratio": median(o / p for o, p in zip(ours_cpu, plain_cpu, strict=True)),
            "breakdown_s": median(ours_s), "torch_profiler_s": median(theirs_s),
            "cpu_ratio_vs_torch_profiler": median(o / t for o, t in zip(ours_cpu, theirs_cpu, strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (0: torch's default)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: measure this entry, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.rounds, args.iterations, args.threads)))
        return

    print(f"{'':<12} {'--- iteration, wall ---':^30} {'CPU':>6}   {'--- whole measurement, wall ---':^32} {'CPU':>6}")
    print(f"{'sample':<12} {'unprofiled':>11} {'profiled':>10} {'ratio':>6} {'ratio':>6}   "
          f"{'breakdown':>10} {'torch.prof':>10} {'ratio':>8} {'ratio':>6}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for entry in sorted(SAMPLES.glob("*/entry.py")):
        child = subprocess.run([sys.executable, __file__, "--one", str(entry), "--rounds", str(args.rounds),
                                "--iterations", str(args.iterations), "--threads", str(args.threads)],
                               capture_output=True, text=True, env=env)
        if child.returncode != 0:
            print(f"{entry.parent.name:<12} failed: {child.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{entry.parent.name:<12} {r['unprofiled_ms']:>9.2f}ms {r['profiled_ms']:>8.2f}ms "
              f"{r['profiled_ms'] / r['unprofiled_ms']:>5.2f}x {r['cpu_ratio']:>5.2f}x   "
              f"{r['breakdown_s']:>9.3f}s {r['torch_profiler_s']:>9.3f}s "
              f"{r['breakdown_s'] / r['torch_profiler_s']:>7.2f}x {r['cpu_ratio_vs_torch_profiler']:>5.2f}x")

    # What a user sees: the ratio inside real reports, from the CLI (worker process, forked run child,
    # default threads), next to the in-process figures above.
    print(f"\nin --json reports (median of {args.rounds} runs of skyline-tui, default threads): "
          "breakdown.profiled_iteration_ms / throughput.iteration_ms")
    for entry in sorted(SAMPLES.glob("*/entry.py")):
        ratios = []
        for _ in range(args.rounds):
            child = subprocess.run([sys.executable, "-m", "skyline_tui", str(entry), "--json", "-", "--no-memory",
                                    "--no-predictions"], capture_output=True, text=True, env=env)
            if child.returncode != 0:
                break
            report = json.loads(child.stdout)
            ratios.append(report["breakdown"]["profiled_iteration_ms"] / report["throughput"]["iteration_ms"])
        if ratios:
            print(f"{entry.parent.name:<12} {statistics.median(ratios):>5.2f}x  (runs: "
                  + ", ".join(f"{r:.2f}" for r in ratios) + ")")
        else:
            print(f"{entry.parent.name:<12} failed: {child.stderr.strip().splitlines()[-1:]}")


if __name__ == "__main__":
    main()
