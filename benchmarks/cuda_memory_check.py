"""CUDA memory figures per bundled sample (not a test; needs a GPU): the profiler's peak next to a plain
``torch.cuda.max_memory_allocated`` around one iteration, and the largest batch the predictions name next
to the largest batch that really runs.

Each sample runs in its own process.  The largest batch that runs is searched from the predicted one:
up by 25 % steps until an out-of-memory error (at most ``--steps``), then bisected; each attempt runs two
iterations of a fresh model (the second one's optimizer state and workspaces included).

    python benchmarks/cuda_memory_check.py [--samples mlp,lstm] [--steps 6]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


def _runs(entry: str, batch_size: int) -> bool:
    import torch

    from skyline_tui.profiler.entry import load_entry_point
    from skyline_tui.profiler.errors import is_oom
    from skyline_tui.profiler.run import load_workload

    work: Any = None
    try:
        work = load_workload(load_entry_point(entry), batch_size)
        work.run()
        work.run()
        torch.cuda.synchronize()
        return True
    except Exception as exc:  # noqa: BLE001 - an OOM is the answer; anything else is reported and ends the search
        if not is_oom(exc):
            # e.g. a cuDNN "not supported" at a huge batch: this batch does not run, for a reason worth seeing.
            print(f"batch {batch_size}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        return False
    finally:
        work = None
        gc.collect()
        torch.cuda.empty_cache()


def measure_one(entry: str, steps: int) -> dict[str, Any]:
    import torch

    from skyline_tui.config import ProfileConfig
    from skyline_tui.profiler.run import profile

    # Short budgets: this runs on a lent GPU whose minutes are counted; the figures need the memory phase
    # and the predictions' max_batch_size only.
    report = profile(entry, None, ProfileConfig(breakdown=False, health=False, throughput_budget_s=1.0,
                                                predictions_budget_s=4.0))
    if report.error is not None:
        return {"error": report.error.message}
    assert report.memory is not None and report.predictions is not None
    # Plain reference: a fresh model, one warm-up iteration, then the allocator's peak over one iteration.
    from skyline_tui.profiler.entry import load_entry_point
    from skyline_tui.profiler.run import load_workload

    gc.collect()
    torch.cuda.empty_cache()
    work = load_workload(load_entry_point(entry), report.batch_size or 1)
    work.run()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    work.run()
    torch.cuda.synchronize()
    plain_peak = torch.cuda.max_memory_allocated()
    del work
    gc.collect()
    torch.cuda.empty_cache()

    from skyline_tui.predictions.fits import reserved_per_allocated

    predicted = report.predictions.max_batch_size
    largest = _largest_that_runs(entry, predicted, steps) if predicted else None
    return {"batch_size": report.batch_size, "peak": report.memory.peak_bytes, "plain_peak": plain_peak,
            "reserved_peak": report.memory.reserved_peak_bytes, "capacity": report.memory.capacity_bytes,
            "predicted_max": predicted, "oom_batch_size": report.predictions.oom_batch_size,
            # What the predicted maximum was scaled by: reserved/allocated at the largest sampled batch.
            "reserved_ratio": reserved_per_allocated(report.predictions.samples),
            "largest_runs": largest}


def _largest_that_runs(entry: str, start: int, steps: int) -> Optional[str]:
    """The largest batch that runs, as text ("≥ N" when the search stopped before an OOM)."""
    if not _runs(entry, start):
        low, high = 0, start
    else:
        low, high = start, None
        for _ in range(steps):
            candidate = max(low + 1, int(low * 1.25))
            if _runs(entry, candidate):
                low = candidate
            else:
                high = candidate
                break
        if high is None:
            return f">={low}"
    for _ in range(2 * steps):
        if high - low <= 1:
            break
        middle = (low + high) // 2
        if _runs(entry, middle):
            low = middle
        else:
            high = middle
    return str(low) if high - low <= 1 else f"{low}..{high - 1}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default=",".join(sorted(p.parent.name for p in SAMPLES.glob("*/entry.py"))))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.steps)))
        return
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (this check is for a GPU box)")
        return
    mib = float(1 << 20)
    print(f"{'sample':<12} {'batch':>5} {'peak MiB':>9} {'plain MiB':>9} {'ratio':>6} {'reserved MiB':>12} "
          f"{'capacity MiB':>12} {'res/alloc':>9} {'predicted max':>13} {'largest runs':>12} {'oom at':>7}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for name in args.samples.split(","):
        entry = SAMPLES / name / "entry.py"
        out = subprocess.run([sys.executable, __file__, "--one", str(entry), "--steps", str(args.steps)],
                             capture_output=True, text=True, cwd=REPO, env=env)
        if out.returncode != 0:
            print(f"{name:<12} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if "error" in r:
            print(f"{name:<12} error: {r['error']}")
            continue
        reserved = "-" if r["reserved_peak"] is None else f"{r['reserved_peak'] / mib:.1f}"
        print(f"{name:<12} {r['batch_size']:>5} {r['peak'] / mib:>9.1f} {r['plain_peak'] / mib:>9.1f} "
              f"{r['peak'] / r['plain_peak']:>6.3f} {reserved:>12} {r['capacity'] / mib:>12.0f} "
              f"{r['reserved_ratio']:>9.3f} "
              f"{str(r['predicted_max']):>13} {str(r['largest_runs']):>12} {str(r['oom_batch_size']):>7}")


if __name__ == "__main__":
    main()
