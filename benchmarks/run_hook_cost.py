"""What ``skyline-tui run``'s hooks cost a step, inside one process (not a test).

``run_overhead.py`` times whole processes, and on this 2-core VM two processes of one script differ by more than
the goal (a 0.5 ms MLP step read 0.70x-2.0x between rounds of one run): allocation history and cache placement
move a small model's step more than the hooks do.  This one times the same loop (a 64-wide MLP, one thread, the
step timed by the thread's CPU clock) bare, and with the run's hooks installed as the child installs them
(events packed and written to a pipe that a ``cat`` drains), alternating fresh processes; per process the median
step after a fifth of warm-up.  Printed: each mode's per-process medians, their minimum (noise only adds), and
the minima's difference from the bare loop: the hooks' cost per step.

    python benchmarks/run_hook_cost.py [--processes 7] [--steps 1000] [--width 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_overhead import MLP, ROOT  # noqa: E402

LOOP = '''
import os, statistics, subprocess, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
mode, steps, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode != "bare":
    from skyline_tui.run.channel import Sender
    from skyline_tui.run.hooks import RunHooks
    read_end, write_end = os.pipe()
    drain = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.DEVNULL)
    os.close(read_end)
    sender = Sender(write_end)
    every = int(mode.split("every")[1]) if "every" in mode else None
    RunHooks(sender.send, time.perf_counter(), send_step=sender.send_step, health_every=every).install()
''' + MLP + '''times = []
for _ in range(steps):
    began = time.thread_time_ns()
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    times.append(time.thread_time_ns() - began)
print(f"MEDIAN_US {statistics.median(times[steps // 5:]) / 1e3!r}")
print(f"MEAN_US {statistics.fmean(times[steps // 5:]) / 1e3!r}")
'''

MODES = ("bare", "hooks", "hooks, health every 50")


def one(mode: str, steps: int, width: int) -> tuple[float, float]:
    code = mode.replace("hooks, health ", "").replace(" ", "") if mode != "bare" else "bare"
    done = subprocess.run([sys.executable, "-c", LOOP, code, str(steps), str(width)], capture_output=True,
                          text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return (float(done.stdout.split("MEDIAN_US ")[1].split()[0]), float(done.stdout.split("MEAN_US ")[1].split()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=7)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    seen: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for i in range(args.processes):
        for mode in (MODES if i % 2 == 0 else tuple(reversed(MODES))):
            seen[mode].append(one(mode, args.steps, args.width))
    bare = min(median for median, _ in seen["bare"])
    print(f"MLP {args.width} wide, {args.processes} processes a mode, {args.steps} steps each (us a step, thread CPU)")
    for mode in MODES:
        medians = sorted(median for median, _ in seen[mode])
        means = sorted(mean for _, mean in seen[mode])
        print(f"  {mode:<24} median: min {medians[0]:7.1f} (+{medians[0] - bare:5.1f}, {medians[0] / bare:.3f}x)"
              f"  median of medians {statistics.median(medians):7.1f}; mean: min {means[0]:7.1f}")


if __name__ == "__main__":
    main()
