"""The whole ``skyline-tui ENTRY --json out`` process against the torch.profiler script a user would write.

The script does what torch.profiler users do: import torch, load the entry point, warm up, profile 5
iterations with ``with_stack=True, profile_memory=True`` and build ``key_averages(group_by_stack_n=5)``
(printed as a table, as users do).  Both are timed as whole processes, wall clock from launch to exit, in
pairs of alternating order (A B, B A, ...), and the medians are printed per bundled sample with their
ratio.  Not a test: the machine is shared and noisy, so only the ratio within one run means anything.

    python benchmarks/vs_torch_profiler.py [--samples mlp,lstm] [--pairs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = ("mlp", "convnet", "transformer", "lstm")
WARMUP_ITERATIONS = 3
PROFILED_ITERATIONS = 5

TORCH_PROFILER_SCRIPT = """
import importlib.util, inspect, os, sys
import torch
from torch.profiler import ProfilerActivity, profile

entry = sys.argv[1]
sys.path.insert(0, os.path.dirname(entry))
spec = importlib.util.spec_from_file_location("entry", entry)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.skyline_model_provider()
batch_size = inspect.signature(module.skyline_input_provider).parameters["batch_size"].default
inputs = module.skyline_input_provider(batch_size=batch_size)
iteration = module.skyline_iteration_provider(model)
for _ in range({warmup}):
    iteration(*inputs)
activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
with profile(activities=activities, with_stack=True, profile_memory=True) as prof:
    for _ in range({profiled}):
        iteration(*inputs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
print(prof.key_averages(group_by_stack_n=5).table(sort_by="self_cpu_time_total", row_limit=20))
""".format(warmup=WARMUP_ITERATIONS, profiled=PROFILED_ITERATIONS)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def time_process(args: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(args, check=True, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def compare(sample: str, pairs: int, out_dir: str) -> tuple[float, float]:
    entry = str(REPO / "samples" / sample / "entry.py")
    out = os.path.join(out_dir, f"{sample}.json")
    torch_profiler = [sys.executable, "-c", TORCH_PROFILER_SCRIPT, entry]
    skyline = [sys.executable, "-m", "skyline_tui", entry, "--json", out, "--quiet"]
    times: dict[str, list[float]] = {"torch.profiler": [], "skyline-tui": []}
    for number in range(pairs):
        order = [("torch.profiler", torch_profiler), ("skyline-tui", skyline)]
        if number % 2 == 1:
            order.reverse()
        for name, args in order:
            times[name].append(time_process(args))
    return statistics.median(times["torch.profiler"]), statistics.median(times["skyline-tui"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default=",".join(SAMPLES))
    parser.add_argument("--pairs", type=int, default=4, help="alternating pairs per sample (median of each side)")
    args = parser.parse_args()
    print(f"whole processes, median of {args.pairs} alternating pairs; ratio = skyline-tui --json / torch.profiler")
    ratios = {}
    with tempfile.TemporaryDirectory() as out_dir:
        for sample in args.samples.split(","):
            reference, ours = compare(sample, args.pairs, out_dir)
            ratios[sample] = ours / reference
            print(f"{sample:12s} torch.profiler {reference:6.2f} s   skyline-tui --json {ours:6.2f} s   "
                  f"ratio {ratios[sample]:.2f}x", flush=True)
    print("ratios: " + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()))
    return 0 if all(ratio <= 1.0 for ratio in ratios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
