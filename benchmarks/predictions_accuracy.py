"""How well the batch-size predictions match a plain measurement, per bundled sample.

For each sample: profile the throughput at its default batch ``b`` (as ``profile()`` does), measure the
predictions, then profile plain runs at 2b and 4b (a fresh model, the same timing method) and print the
predicted and measured iteration times and the error; also at 3b and 6b, batch sizes the sampler never
runs (it samples 2b, 4b, b/2, 8b), so those errors test the fit rather than repeat a measurement.
Not a test: this machine is noisy, so the figures
are printed, not asserted.

    python benchmarks/predictions_accuracy.py [--samples mlp,lstm] [--threads N] [--repeat K] [--pairs P]
                                              [--predictions-budget S] [--clock cpu] [--default-malloc]

Each sample runs ``--pairs`` times (3): its predictions, then right after them its references, ``--repeat``
plain profiles at each factor, round-robin; an error is the median over the pairs.  This machine drifts: three
runs of an in-process sweep of the lstm (64, 96, 128, 192, 256, interleaved 3 times) each lay on a line of
the same slope, 2-4 ms apart (64 read 8.2, 9.8 and 10.5 ms); within one run, 64 read 8.7 ms, then 9.8.
A single pair whose references caught the other stretch read 3x 15 % off while 2x, measured earlier, was
within 2 %: the machine's error, not the fit's.  Round-robin references meet a drift alike, and the median
over pairs keeps one unlucky stretch from deciding the figure; ``--pairs 1`` is one pair (as before this
change, but with round-robin references).

Each sample runs in a process of its own, as the profiler runs each entry point in a fresh child: in one
process, a sample's references depended on the samples measured before it (the lstm at 4x read 41 ms after
the other three samples, 28 ms alone).

``--clock cpu`` times CPU iterations with the process's CPU time instead of the wall clock (use it with
``--threads 1``): on a shared machine other processes' load comes in bursts that inflate wall-clock times
by 2-10x at random, which says nothing about the predictions; CPU time is what a quiet machine would see.

The allocator is made steady (``MALLOC_TOP_PAD_``, 512 MiB) unless ``--default-malloc``.  Under glibc's
defaults a CPU batch size's time depends on the process's allocation history: freed memory goes back to
the system and is faulted in again every iteration, or not, depending on what ran before.  The bundled
lstm at 96 ran 21 ms in one run of this benchmark and 13.7 ms in the next (each reference's own three runs
within 2 %), so no prediction can be within 10 % of it.  The profiler names that regime in its own report
(``page_faults_per_iteration``, ``page_fault_ms``); each reference's faults an iteration are printed here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from skyline_tui.config import ProfileConfig  # noqa: E402
from skyline_tui.fits import iteration_ms_at  # noqa: E402
from skyline_tui.profiler import entry as entry_mod  # noqa: E402
from skyline_tui.profiler import timing  # noqa: E402
from skyline_tui.profiler.batch_scaling import measure_predictions  # noqa: E402
from skyline_tui.profiler.run import device_info, load_workload, measure_throughput  # noqa: E402
from skyline_tui.report import STEADY_MALLOC_TOP_PAD, Report  # noqa: E402

SAMPLES = ("mlp", "convnet", "transformer", "lstm")


FACTORS = (2, 4, 3, 6)  # 2x and 4x are sampled by the profiler itself; 3x and 6x never are


def plain_ms(ep: entry_mod.EntryPoint, batch_size: int, config: ProfileConfig) -> tuple[float, float]:
    """The iteration time one fresh profile at ``batch_size`` reports (a fresh model, the headline's timing
    method), and its page faults an iteration (the allocator's regime)."""
    work = load_workload(ep, batch_size)
    throughput = measure_throughput(work, config)
    del work
    return throughput.iteration_ms, throughput.page_faults_per_iteration or 0.0


def references(ep: entry_mod.EntryPoint, b: int, config: ProfileConfig,
               repeat: int) -> tuple[dict[int, list[float]], dict[int, float]]:
    """``repeat`` plain profiles at each factor's batch, round-robin (the order reversed every other round):
    every factor's runs span the same stretch of time, so a drift of the machine meets them all alike."""
    runs: dict[int, list[float]] = {factor: [] for factor in FACTORS}
    faults: dict[int, float] = {factor: 0.0 for factor in FACTORS}
    for number in range(repeat):
        for factor in (FACTORS if number % 2 == 0 else FACTORS[::-1]):
            ms, per_iteration = plain_ms(ep, b * factor, config)
            runs[factor].append(ms)
            faults[factor] = max(faults[factor], per_iteration)
    return runs, faults


def one_pair(name: str, ep: entry_mod.EntryPoint, entry: Path, config: ProfileConfig,
             repeat: int) -> dict[int, Optional[float]]:
    """One profile's predictions and, right after, the plain references: the error (%) at each factor."""
    b = ep.default_batch_size
    work = load_workload(ep, b)
    report = Report(entry_point=str(entry), project_root=str(entry.parent), batch_size=b,
                    device=device_info(work.device))
    report = report.replace(throughput=measure_throughput(work, config))
    t0 = time.monotonic()
    pred = measure_predictions(work, config, report)
    spent = time.monotonic() - t0
    del work
    points = ", ".join(f"{s.batch_size}:{s.iteration_ms:.1f}" for s in pred.samples)
    fit = pred.run_time_ms
    print(f"{name:12s} b={b:<4d} predictions took {spent:4.1f}s  samples(b:ms) {points}  "
          f"headline {report.throughput.page_faults_per_iteration or 0.0:,.0f} faults/it")
    if fit is not None:
        print(f"{'':12s} fit t(b) = {fit.slope:.4f}*b + {fit.bias:.2f} ms  R²={fit.r2:.3f}  "
              f"max {pred.predicted_max_samples_per_second or 0:.0f} samples/s  time model: {pred.time_model}")
    sampled = {s.batch_size for s in pred.samples}
    runs, faults = references(ep, b, config, repeat)
    errors: dict[int, Optional[float]] = {}
    for factor in FACTORS:
        batch = b * factor
        kind = "sampled " if batch in sampled else "held out"
        predicted = iteration_ms_at(pred, batch)
        measured = statistics.median(runs[factor])
        spread = f"(its runs {min(runs[factor]):.2f}..{max(runs[factor]):.2f}, {faults[factor]:,.0f} faults/it)"
        if predicted is None:
            print(f"{'':12s} {factor}x (b={batch}, {kind}): no prediction, measured {measured:.1f} ms")
            errors[factor] = None
            continue
        errors[factor] = (predicted - measured) / measured * 100.0
        print(f"{'':12s} {factor}x (b={batch}, {kind}): predicted {predicted:8.2f} ms  measured {measured:8.2f} ms  "
              f"error {errors[factor]:+6.1f}%  {spread}")
    return errors


def run_sample(name: str, config: ProfileConfig, repeat: int, pairs: int) -> tuple[float, float]:
    """The worst |median error| over the sampled factors (2x, 4x) and over the held-out ones (3x, 6x)."""
    entry = ROOT / "samples" / name / "entry.py"
    ep = entry_mod.load_entry_point(entry)
    per_pair = [one_pair(name, ep, entry, config, repeat) for _ in range(pairs)]
    worst: dict[bool, float] = {False: 0.0, True: 0.0}
    medians = []
    for factor in FACTORS:
        errors = [pair[factor] for pair in per_pair]
        error = float("inf") if None in errors else statistics.median(errors)
        medians.append(f"{factor}x {error:+.1f}%")
        worst[factor in (3, 6)] = max(worst[factor in (3, 6)], abs(error))
    if pairs > 1:
        print(f"{'':12s} median error over {pairs} pairs: " + ", ".join(medians))
    # Forget the sample's sibling modules so the next sample imports its own `model`.
    sys.modules.pop("model", None)
    while str(entry.parent) in sys.path:
        sys.path.remove(str(entry.parent))
    return worst[False], worst[True]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default=",".join(SAMPLES))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--repeat", type=int, default=3, help="plain measurements per batch (median)")
    parser.add_argument("--pairs", type=int, default=3,
                        help="predictions-then-references pairs per sample (the median error; 1: a single pair)")
    parser.add_argument("--predictions-budget", type=float, default=ProfileConfig().predictions_budget_s,
                        help="the predictions phase's budget in seconds (skyline-tui --predictions-budget)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--default-malloc", action="store_true", help="glibc's default allocator (see above)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: this process runs one sample
    args = parser.parse_args()
    if args.one is not None:
        return run_one(args)
    env = dict(os.environ)
    if not args.default_malloc:
        env["MALLOC_TOP_PAD_"] = str(STEADY_MALLOC_TOP_PAD)  # glibc reads it at start-up
    config = ProfileConfig(predictions_budget_s=args.predictions_budget)
    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, {args.clock} clock, "
          f"MALLOC_TOP_PAD_={env.get('MALLOC_TOP_PAD_', 'unset')}, "
          f"predictions budget {config.predictions_budget_s}s, tolerance 15% (2x/4x) and 10% (3x/6x), "
          f"reference: median of {args.repeat} plain profiles, round-robin, right after the predictions; "
          f"{args.pairs} such pairs per sample (median error), a process per sample", flush=True)
    worst, worst_held_out = {}, {}
    for name in args.samples.split(","):
        command = [sys.executable, __file__, "--one", name, "--repeat", str(args.repeat), "--clock", args.clock,
                   "--pairs", str(args.pairs), "--predictions-budget", str(args.predictions_budget)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
        lines = done.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith(RESULT)), flush=True)
        results = [json.loads(line[len(RESULT):]) for line in lines if line.startswith(RESULT)]
        if done.returncode != 0 or not results:
            print(f"{name}: the benchmark process failed (exit {done.returncode})")
            return 2
        worst[name], worst_held_out[name] = results[0]
    print("worst |error| at 2x/4x per sample: " + ", ".join(f"{n} {e:.1f}%" for n, e in worst.items()))
    print("worst |error| at 3x/6x (never sampled): " + ", ".join(f"{n} {e:.1f}%" for n, e in worst_held_out.items()))
    # The goal (issue 16): within 10 % at batch sizes never sampled; 15 % at the sampled 2x/4x as before.
    passed = all(e <= 15.0 for e in worst.values()) and all(e <= 10.0 for e in worst_held_out.values())
    print("PASS" if passed else "FAIL", "(2x/4x within 15 %, 3x/6x within 10 %)")
    return 0 if passed else 1


RESULT = "RESULT "


def run_one(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        # Only the iteration clock changes; budgets and deadlines stay on the wall clock.
        timing.time = types.SimpleNamespace(perf_counter_ns=time.process_time_ns, monotonic=time.monotonic)
    config = ProfileConfig(predictions_budget_s=args.predictions_budget)
    errors, held_out = run_sample(args.one, config, args.repeat, max(1, args.pairs))
    print(RESULT + json.dumps([errors, held_out]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
