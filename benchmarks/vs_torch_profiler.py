"""The whole ``skyline-tui ENTRY --json out`` process against the torch.profiler script a user would write.

The script does what torch.profiler users do: import torch, load the entry point, warm up, profile 5
iterations with ``with_stack=True, profile_memory=True`` and build ``key_averages(group_by_stack_n=5)``
(printed as a table, as users do).  Both are timed as whole processes, wall clock from launch to exit, in
pairs of alternating order (A B, B A, ...), and the medians are printed per bundled sample with their
ratio.  Not a test: the machine is shared and noisy, so only the ratio within one run means anything.

    python benchmarks/vs_torch_profiler.py [--samples mlp,lstm] [--pairs N] [--before /path/to/other/checkout]
                                           [--variant=--no-health ...]

``--before`` adds a third process per round, ``skyline-tui --json`` run from another checkout (e.g. main), in
the same rotation, so before/after figures come from one run on the same machine load.  Each ``--variant``
adds ``skyline-tui --json`` with those options (e.g. a phase left out) to the rotation: what a choice of
options would cost or save, measured beside the default in one run.
"""

from __future__ import annotations

import argparse
import os
import shlex
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


def _env(repo: Path = REPO) -> dict[str, str]:
    # Only ``repo`` on the path: the skyline-tui imported (by this process and by its worker) is that checkout's.
    return {**os.environ, "PYTHONPATH": str(repo)}


def time_process(args: list[str], repo: Path = REPO) -> float:
    began = time.perf_counter()
    subprocess.run(args, check=True, cwd=repo, env=_env(repo), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def compare(sample: str, pairs: int, out_dir: str, before: Path | None = None,
            variants: tuple[str, ...] = ()) -> dict[str, float]:
    """Median whole-process seconds per contestant; the order rotates every round."""
    entry = str(REPO / "samples" / sample / "entry.py")
    out = os.path.join(out_dir, f"{sample}.json")
    skyline = [sys.executable, "-m", "skyline_tui", entry, "--json", out, "--quiet"]
    contestants = [("torch.profiler", [sys.executable, "-c", TORCH_PROFILER_SCRIPT, entry], REPO),
                   ("skyline-tui", skyline, REPO)]
    if before is not None:
        contestants.append(("before", skyline, before))
    for variant in variants:
        contestants.append((variant, skyline + shlex.split(variant), REPO))
    times: dict[str, list[float]] = {name: [] for name, _, _ in contestants}
    for number in range(pairs):
        shift = number % len(contestants)
        order = contestants[shift:] + contestants[:shift]
        if number % 2 == 1:
            order.reverse()
        for name, args, repo in order:
            times[name].append(time_process(args, repo))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default=",".join(SAMPLES))
    parser.add_argument("--pairs", type=int, default=4, help="alternating pairs per sample (median of each side)")
    parser.add_argument("--before", type=Path, default=None,
                        help="another checkout whose --json run is timed in the same rotation (before/after)")
    parser.add_argument("--variant", action="append", default=[], metavar="OPTIONS",
                        help="also time skyline-tui --json with these options, in the same rotation (repeatable)")
    args = parser.parse_args()
    print(f"whole processes, median of {args.pairs} alternating pairs; ratio = skyline-tui --json / torch.profiler")
    ratios = {}
    with tempfile.TemporaryDirectory() as out_dir:
        for sample in args.samples.split(","):
            medians = compare(sample, args.pairs, out_dir, args.before, tuple(args.variant))
            reference, ours = medians["torch.profiler"], medians["skyline-tui"]
            ratios[sample] = ours / reference
            before = "" if "before" not in medians else \
                f"   before {medians['before']:6.2f} s ratio {medians['before'] / reference:.2f}x"
            print(f"{sample:12s} torch.profiler {reference:6.2f} s   skyline-tui --json {ours:6.2f} s   "
                  f"ratio {ratios[sample]:.2f}x{before}", flush=True)
            for variant in args.variant:
                print(f"{'':12s} skyline-tui --json {variant}: {medians[variant]:6.2f} s   "
                      f"ratio {medians[variant] / reference:.2f}x", flush=True)
    print("ratios: " + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()))
    return 0 if all(ratio <= 1.0 for ratio in ratios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
