"""The page-fault estimate against the time a steady allocator actually saves, per bundled sample (CPU).

The throughput reports ``page_fault_ms``: the measured iterations' minor faults times what one fault costs
the process (profiler/faults.py).  Independent of that arithmetic, the same ``--json`` run with
``MALLOC_TOP_PAD_`` set (glibc keeps freed memory, so the iterations fault nothing in) shows what the
faults really cost: the iteration time saved.  Runs alternate between the two settings; medians are
printed with the ratio estimate / saving.  Not a test: the figures are noisy and machine-dependent.

    python benchmarks/page_faults.py [--samples lstm,convnet] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_tui.presentation import STEADY_MALLOC_TOP_PAD  # noqa: E402

SAMPLES = ("mlp", "convnet", "transformer", "lstm")
THROUGHPUT_ONLY = ["--no-breakdown", "--no-memory", "--no-health", "--no-predictions", "--no-history", "--quiet"]


def throughput(sample: str, steady: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MALLOC_TOP_PAD_", None)
    if steady:
        env["MALLOC_TOP_PAD_"] = str(STEADY_MALLOC_TOP_PAD)
    done = subprocess.run([sys.executable, "-m", "skyline_tui", str(REPO / "samples" / sample / "entry.py"),
                           "--json", "-", *THROUGHPUT_ONLY], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["throughput"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default=",".join(SAMPLES))
    parser.add_argument("--runs", type=int, default=3, help="runs per setting and sample (alternating)")
    args = parser.parse_args()
    print(f"medians of {args.runs} alternating --json runs per setting; "
          f"steady: MALLOC_TOP_PAD_={STEADY_MALLOC_TOP_PAD}")
    print(f"{'sample':12s} {'default ms':>10s} {'faults/it':>9s} {'estimate':>8s}   {'steady ms':>9s} {'faults/it':>9s}"
          f"   {'saved':>6s} {'estimate/saved':>14s}")
    for sample in args.samples.split(","):
        default, steady = [], []
        for number in range(args.runs):
            for is_steady in ((False, True) if number % 2 == 0 else (True, False)):
                (steady if is_steady else default).append(throughput(sample, is_steady))

        def median(runs: list[dict], key: str) -> float:
            return statistics.median(run[key] or 0.0 for run in runs)

        saved = median(default, "iteration_ms") - median(steady, "iteration_ms")
        estimate = median(default, "page_fault_ms")
        ratio = f"{estimate / saved:.2f}x" if saved > 0 and estimate > 0 else "-"
        faults = "page_faults_per_iteration"
        print(f"{sample:12s} {median(default, 'iteration_ms'):10.2f} {median(default, faults):9.0f} {estimate:8.2f}   "
              f"{median(steady, 'iteration_ms'):9.2f} {median(steady, faults):9.0f}   {saved:6.2f} {ratio:>14s}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
