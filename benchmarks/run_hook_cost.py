"""What ``skyline-tui run``'s hooks cost a step, inside one process (not a test).

``run_overhead.py`` times whole processes, and on this 2-core VM two processes of one script differ by more than
the goal (a 0.5 ms MLP step read 0.70x-2.0x between rounds of one run): allocation history and cache placement
move a small model's step more than the hooks do.  This one times the same loop (a 64-wide MLP, one thread, the
step timed by the thread's CPU clock) bare, and with the run's hooks installed as the child installs them
(events packed and written to a pipe that a ``cat`` drains), alternating fresh processes; per process the median
step after a fifth of warm-up.  Printed: each mode's per-process medians, their minimum (noise only adds), and
the minima's difference from the bare loop: the hooks' cost per step.

    python benchmarks/run_hook_cost.py [--processes 7] [--steps 1000] [--width 64]
    python benchmarks/run_hook_cost.py --alternate 20 --processes 3   # off/on in one process (steadier)
    python benchmarks/run_hook_cost.py --alternate 20 --processes 3 --floor   # empty hooks at the same places
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

# One process, the hooks switched off and on between blocks of steps (the wrappers put back, the hooks' entries
# taken out of torch's tables and returned), so both sides share the process's allocator state and cache placement,
# which move a small step more between processes than the hooks do.  Per block its median step; per process the
# median of the (hooked - bare) differences of adjacent blocks.
ALTERNATE = '''
import os, statistics, subprocess, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
from torch.optim import optimizer as optim_module
from skyline_tui.run.channel import Sender
from skyline_tui.run.hooks import RunHooks
blocks, width = int(sys.argv[1]), int(sys.argv[2])
plain = (torch.autograd.backward, torch.autograd.grad, torch.optim.Optimizer.zero_grad, nn.Module.zero_grad)
read_end, write_end = os.pipe()
drain = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.DEVNULL)
os.close(read_end)
sender = Sender(write_end)
RunHooks(sender.send, time.perf_counter(), send_step=sender.send_step).install()
''' + MLP + '''def step():
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
for _ in range(100):
    step()  # the first step closes: the hooks move to the outermost module
hooked = (torch.autograd.backward, torch.autograd.grad, torch.optim.Optimizer.zero_grad, nn.Module.zero_grad)
tables = (model._forward_pre_hooks, model._forward_hooks, optim_module._global_optimizer_pre_hooks,
          optim_module._global_optimizer_post_hooks)
entries = [dict(table) for table in tables]
def switch(on):
    (torch.autograd.backward, torch.autograd.grad, torch.optim.Optimizer.zero_grad,
     nn.Module.zero_grad) = hooked if on else plain
    for table, kept in zip(tables, entries):
        table.clear()
        if on:
            table.update(kept)
medians = {False: [], True: []}
for block in range(2 * blocks):
    on = block % 2 == 1
    switch(on)
    times = []
    for _ in range(60):
        began = time.thread_time_ns()
        step()
        times.append(time.thread_time_ns() - began)
    medians[on].append(statistics.median(times[10:]) / 1e3)
print(f"BARE_US {statistics.median(medians[False])!r}")
print(f"DIFF_US {statistics.median(h - b for b, h in zip(medians[False], medians[True]))!r}")
'''


# The floor under any design that sees each step in the script's process: the same places hooked (the outermost
# module's forward pre and post hooks, the backward wrapper reading the loss with item(), the optimizer's global
# pre and post hooks, a perf_counter read at each), doing nothing else: no step engine, no record, no pipe.
FLOOR = ALTERNATE.replace('''RunHooks(sender.send, time.perf_counter(), send_step=sender.send_step).install()
''', "").replace('''for _ in range(100):
    step()  # the first step closes: the hooks move to the outermost module
''', '''clock = time.perf_counter
def noted(*args, **kwargs):
    clock()
def backward(tensors=None, *args, **kwargs):
    clock()
    tensors.item()
    return plain[0](tensors, *args, **kwargs)
torch.autograd.backward = backward
model.register_forward_pre_hook(noted, with_kwargs=True)
model.register_forward_hook(noted, with_kwargs=True, always_call=True)
optim_module.register_optimizer_step_pre_hook(noted)
optim_module.register_optimizer_step_post_hook(noted)
''')


def alternate(processes: int, blocks: int, width: int, floor: bool = False) -> None:
    bare, diffs = [], []
    for _ in range(processes):
        done = subprocess.run([sys.executable, "-c", FLOOR if floor else ALTERNATE, str(blocks), str(width)],
                              capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        bare.append(float(done.stdout.split("BARE_US ")[1].split()[0]))
        diffs.append(float(done.stdout.split("DIFF_US ")[1].split()[0]))
    what = "empty hooks at the same places (the floor)" if floor else "hooks"
    print(f"MLP {width} wide, {what} off and on in alternate blocks of 60 steps, {blocks} pairs, {processes} processes")
    print(f"  bare step (us, thread CPU): {' '.join(f'{b:.1f}' for b in bare)}")
    print(f"  hooks' cost a step (us):    {' '.join(f'{d:.1f}' for d in diffs)}  median {statistics.median(diffs):.1f}"
          f" ({1 + statistics.median(diffs) / statistics.median(bare):.3f}x)")


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
    parser.add_argument("--alternate", type=int, metavar="PAIRS", default=0,
                        help="instead: in each process, PAIRS blocks with the hooks off then on")
    parser.add_argument("--floor", action="store_true",
                        help="with --alternate: empty hooks at the same places instead of the run's")
    args = parser.parse_args()
    if args.alternate:
        alternate(args.processes, args.alternate, args.width, args.floor)
        return
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
