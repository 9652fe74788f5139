"""How well the batch-size predictions match a plain loop, per bundled sample.

For each sample: one ``--json``-like run through the real worker (throughput, memory and predictions; the
breakdown and health phases, which do not touch the predictions, are left out), then right after it plain
loops at 2b, 4b, 3b and 6b, each in a fresh process as a training run at that batch size would be (forked
from this benchmark's own process before it runs any op: it loads the entry point, warms up, then times
``PLAIN_ITERATIONS`` iterations; the median, or on a GPU their mean with one wait at the end).  3b and 6b
are batch sizes the sampler never runs (it samples 2b, 4b, b/2, 8b), so those errors test the fit rather
than repeat a measurement.  Not a test: this machine
is noisy, so the figures are printed, not asserted.

    python benchmarks/predictions_accuracy.py [--samples mlp,lstm] [--repeat K] [--pairs P]
                                              [--predictions-budget S] [--threads N] [--default-malloc]
                                              [--references-only]

``--references-only`` profiles nothing: ``--repeat`` plain loops per factor, each in its own process, and how
far apart they are, which bounds how well any prediction can match one of them.

Each sample runs ``--pairs`` times (3): its profile, then right after it ``--repeat`` plain loops at each factor,
round-robin; an error is the median over the pairs.  This machine drifts: three runs of an in-process sweep
of the lstm (64, 96, 128, 192, 256, interleaved 3 times) each lay on a line of the same slope, 2-4 ms apart.
Round-robin references meet a drift alike, and the median over pairs keeps one unlucky stretch from deciding
the figure.

Fresh processes because under glibc's defaults a CPU batch size's time depends on the process's allocation
history: freed memory goes back to the system and is faulted in again every iteration, or not, depending
on what ran before.  In one process, after the larger batch sizes, the lstm at 96 ran 11.5-12.0 ms with no
page faults; a fresh process at 96 ran 20.8-22.3 ms with 5,800-7,900 faults an iteration.  The profiler
measures each batch size in a fresh process too (profiler/predictions/processes.py).  The allocator is made
steady (``MALLOC_TOP_PAD_``, 512 MiB) unless ``--default-malloc``, which is what the CLI runs under.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402  (imported before any fork: each plain loop starts from here, as the worker's runs do)

from skyline_tui.config import ProfileConfig  # noqa: E402
from skyline_tui.predictions.fits import iteration_ms_at  # noqa: E402
from skyline_tui.profiler.entry import load_entry_point  # noqa: E402
from skyline_tui.presentation import STEADY_MALLOC_TOP_PAD  # noqa: E402
from skyline_tui.worker.client import profile_once  # noqa: E402

SAMPLES = ("mlp", "convnet", "transformer", "lstm")
FACTORS = (2, 4, 3, 6)  # 2x and 4x are sampled by the profiler itself; 3x and 6x never are
PLAIN_WARMUP_S = 0.3  # and at least PLAIN_WARMUP_ITERATIONS
PLAIN_WARMUP_ITERATIONS = 3
PLAIN_ITERATIONS = 10


def plain_loop(entry: Path, batch_size: int) -> tuple[float, float]:
    """In a fresh process: load the entry point as a user's script would, warm up, time a plain loop.  The
    median ms of an iteration, and the page faults an iteration (the allocator's regime)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            sys.path.insert(0, str(entry.parent))
            spec = importlib.util.spec_from_file_location("entry", entry)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            iteration = module.skyline_iteration_provider(module.skyline_model_provider())
            inputs = module.skyline_input_provider(batch_size=batch_size)
            # CUDA is initialised here only if the entry point put work on a GPU.
            gpu = torch.cuda.is_initialized()
            sync = torch.cuda.synchronize if gpu else (lambda: None)
            started, done = time.perf_counter(), 0
            while done < PLAIN_WARMUP_ITERATIONS or time.perf_counter() - started < PLAIN_WARMUP_S:
                iteration(*inputs)
                sync()
                done += 1
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            times = []
            if gpu:
                # An iteration returns once its kernels are queued, and a training loop queues the next while
                # they run: one wait at the end of the block, as throughput_vs_plain's plain loop does.  A
                # wait after each iteration would add the launches of a launch-bound model to its time (an
                # H200 run timed that way read the mlp at 128 as 1.32 ms, against the profile's 1.05 ms).
                began = time.perf_counter()
                for _ in range(PLAIN_ITERATIONS):
                    iteration(*inputs)
                sync()
                times.append((time.perf_counter() - began) * 1000.0 / PLAIN_ITERATIONS)
            else:
                for _ in range(PLAIN_ITERATIONS):
                    began = time.perf_counter()
                    iteration(*inputs)
                    times.append((time.perf_counter() - began) * 1000.0)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            os.write(write, pickle.dumps((statistics.median(times), faults / PLAIN_ITERATIONS)))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as result:
        data = result.read()
    os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"the plain loop at batch {batch_size} failed")
    ms, faults = pickle.loads(data)
    return ms, faults


def references(entry: Path, b: int, repeat: int) -> tuple[dict[int, list[float]], dict[int, float]]:
    """``repeat`` plain loops at each factor's batch, round-robin (the order reversed every other round):
    every factor's runs span the same stretch of time, so a drift of the machine meets them all alike."""
    runs: dict[int, list[float]] = {factor: [] for factor in FACTORS}
    faults: dict[int, float] = {factor: 0.0 for factor in FACTORS}
    for number in range(repeat):
        for factor in (FACTORS if number % 2 == 0 else FACTORS[::-1]):
            ms, per_iteration = plain_loop(entry, b * factor)
            runs[factor].append(ms)
            faults[factor] = max(faults[factor], per_iteration)
    return runs, faults


def one_pair(name: str, entry: Path, config: ProfileConfig, repeat: int) -> dict[int, Optional[float]]:
    """One profile's predictions and, right after, the plain references: the error (%) at each factor."""
    started = time.monotonic()
    report = profile_once(str(entry), None, config)
    whole = time.monotonic() - started
    pred, b = report.predictions, report.batch_size
    if report.error is not None or pred is None or b is None:
        raise RuntimeError(f"{name}: the profile failed: {report.error}")
    points = ", ".join(f"{s.batch_size}:{s.iteration_ms:.1f}" for s in pred.samples)
    print(f"{name:12s} b={b:<4d} profile took {whole:4.1f}s  samples(b:ms) {points}  "
          f"headline {report.throughput.page_faults_per_iteration or 0.0:,.0f} faults/it")
    fit = pred.run_time_ms
    if fit is not None:
        print(f"{'':12s} fit t(b) = {fit.slope:.4f}*b + {fit.bias:.2f} ms  R²={fit.r2:.3f}  "
              f"max {pred.predicted_max_samples_per_second or 0:.0f} samples/s  time model: {pred.time_model}")
    sampled = {s.batch_size for s in pred.samples}
    runs, faults = references(entry, b, repeat)
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


def reference_spread(name: str, repeat: int) -> dict[int, float]:
    """``repeat`` plain loops at each factor's batch, each in a fresh process, and how far apart they are: the
    spread (max - min) in % of their median.  Under glibc's default allocator a process's regime decides its time
    (faults.py), so the spread is how well a batch size's time is defined before any prediction is made."""
    entry = ROOT / "samples" / name / "entry.py"
    b = load_entry_point(str(entry)).default_batch_size
    runs, _faults = references(entry, b, repeat)
    spreads = {}
    for factor in FACTORS:
        ms = runs[factor]
        spreads[factor] = (max(ms) - min(ms)) / statistics.median(ms) * 100.0
        print(f"{name:12s} {factor}x (b={b * factor}): {len(ms)} processes " + " ".join(f"{m:.1f}" for m in ms)
              + f" ms, spread {spreads[factor]:.0f} % of their median", flush=True)
    return spreads


def run_sample(name: str, config: ProfileConfig, repeat: int, pairs: int) -> tuple[float, float]:
    """The worst |median error| over the sampled factors (2x, 4x) and over the held-out ones (3x, 6x)."""
    entry = ROOT / "samples" / name / "entry.py"
    per_pair = [one_pair(name, entry, config, repeat) for _ in range(pairs)]
    worst: dict[bool, float] = {False: 0.0, True: 0.0}
    medians = []
    for factor in FACTORS:
        errors = [pair[factor] for pair in per_pair]
        error = float("inf") if None in errors else statistics.median(e for e in errors if e is not None)
        medians.append(f"{factor}x {error:+.1f}%")
        worst[factor in (3, 6)] = max(worst[factor in (3, 6)], abs(error))
    if pairs > 1:
        print(f"{'':12s} median error over {pairs} pairs: " + ", ".join(medians))
    return worst[False], worst[True]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default=",".join(SAMPLES))
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both sides (default: torch's)")
    parser.add_argument("--repeat", type=int, default=2, help="plain loops per batch and pair (median)")
    parser.add_argument("--pairs", type=int, default=3,
                        help="profile-then-references pairs per sample (the median error; 1: a single pair)")
    parser.add_argument("--predictions-budget", type=float, default=ProfileConfig().predictions_budget_s,
                        help="the predictions phase's budget in seconds (skyline-tui --predictions-budget)")
    parser.add_argument("--default-malloc", action="store_true", help="glibc's default allocator (see above)")
    parser.add_argument("--references-only", action="store_true",
                        help="no profile: --repeat plain loops per factor, each in a fresh process, and their spread")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: this process runs one sample
    args = parser.parse_args()
    config = ProfileConfig(breakdown=False, health=False, predictions_budget_s=args.predictions_budget)
    if args.one is not None:
        if args.references_only:
            print(RESULT + json.dumps(reference_spread(args.one, args.repeat)))
            return 0
        errors, held_out = run_sample(args.one, config, args.repeat, max(1, args.pairs))
        print(RESULT + json.dumps([errors, held_out]))
        return 0
    env = dict(os.environ)
    if not args.default_malloc:
        env["MALLOC_TOP_PAD_"] = str(STEADY_MALLOC_TOP_PAD)  # glibc reads it at start-up
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, "
          f"MALLOC_TOP_PAD_={env.get('MALLOC_TOP_PAD_', 'unset')}, "
          f"predictions budget {config.predictions_budget_s}s, tolerance 15% (2x/4x) and 10% (3x/6x), "
          f"reference: median of {args.repeat} plain loops in fresh processes, round-robin, right after the "
          f"profile; {args.pairs} such pairs per sample (median error), a process per sample", flush=True)
    worst, worst_held_out, spreads = {}, {}, {}
    for name in args.samples.split(","):
        command = [sys.executable, __file__, "--one", name, "--repeat", str(args.repeat),
                   "--pairs", str(args.pairs), "--predictions-budget", str(args.predictions_budget)]
        command += ["--references-only"] if args.references_only else []
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
        lines = done.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith(RESULT)), flush=True)
        results = [json.loads(line[len(RESULT):]) for line in lines if line.startswith(RESULT)]
        if done.returncode != 0 or not results:
            print(f"{name}: the benchmark process failed (exit {done.returncode})")
            return 2
        if args.references_only:
            spreads.update({f"{name} {factor}x": spread for factor, spread in results[0].items()})
            continue
        worst[name], worst_held_out[name] = results[0]
    if args.references_only:
        wide = [f"{key} ({spread:.0f} %)" for key, spread in spreads.items() if spread > 10.0]
        print("plain loops of one batch size, each in its own process, spread wider than 10 % of their median at: "
              + (", ".join(wide) or "none"))
        return 0
    print("worst |error| at 2x/4x per sample: " + ", ".join(f"{n} {e:.1f}%" for n, e in worst.items()))
    print("worst |error| at 3x/6x (never sampled): " + ", ".join(f"{n} {e:.1f}%" for n, e in worst_held_out.items()))
    # The goal (issue 16): within 10 % at batch sizes never sampled; 15 % at the sampled 2x/4x as before.
    passed = all(e <= 15.0 for e in worst.values()) and all(e <= 10.0 for e in worst_held_out.values())
    print("PASS" if passed else "FAIL", "(2x/4x within 15 %, 3x/6x within 10 %)")
    return 0 if passed else 1


RESULT = "RESULT "

if __name__ == "__main__":
    sys.exit(main())
