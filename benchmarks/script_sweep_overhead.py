"""What a training-script sweep costs beyond its trials: ``skyline-tui sweep train.py grid.yaml`` of N
trials (one at a time) against the same N trials run by hand, one ``skyline-tui run`` after another.

Measured in one run, alternating (A B A B ...), medians over the rounds (this machine drifts between
minutes).  Per trial = (sweep - runs by hand) / N; it includes the sweep's one-time reading of the script's
parser (a process that imports what the script imports before its parse_args: torch here), shown apart.
``--ray``: the same sweep with ``--ray --ray-cpus 1`` (trials one at a time), beside the local one; its
fixed cost is starting and stopping the local cluster.
Usage: python benchmarks/script_sweep_overhead.py [--trials N] [--rounds R] [--steps S] [--ray]
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
SCRIPT = REPO / "tests" / "fixtures" / "experiments" / "train.py"


def env() -> dict[str, str]:
    variables = dict(os.environ)
    variables["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), variables.get("PYTHONPATH")]))
    variables["SKYLINE_TUI_HISTORY"] = "off"  # what is timed is the sweep, not the store (each run records alike)
    return variables


def timed(command: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env(), check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--ray", action="store_true")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="script-sweep-bench-")
    hidden = [8 * (i + 1) for i in range(args.trials)]
    spec = Path(folder) / "grid.yaml"
    spec.write_text(f"hidden: {{grid_search: {hidden}}}\nsteps: {args.steps}\n")
    by_hand = [[sys.executable, "-m", "skyline_tui", "run", "-q", "--no-history", str(SCRIPT), "--hidden", str(h),
                "--steps", str(args.steps)] for h in hidden]
    sweep = [sys.executable, "-m", "skyline_tui", "sweep", str(SCRIPT), str(spec), "-q", "--no-history"]
    probe = [sys.executable, "-c", "from skyline_tui.sweep.script_spec import load_script_spec as l; "
             f"l({str(spec)!r}, {str(SCRIPT)!r}, [])"]
    results: dict[str, list[float]] = {"runs by hand": [], "sweep": [], "parser probe": []}
    if args.ray:
        results["sweep --ray"] = []
    for _ in range(args.rounds):
        results["runs by hand"].append(sum(timed(c, folder) for c in by_hand))
        results["sweep"].append(timed(sweep, folder))
        results["parser probe"].append(timed(probe, folder))
        if args.ray:
            results["sweep --ray"].append(timed([*sweep, "--ray", "--ray-cpus", "1"], folder))
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"{args.trials} trials of {args.steps} steps, medians of {args.rounds} alternating rounds:")
    for name, value in medians.items():
        print(f"  {name:<14} {value:7.2f} s   ({', '.join(f'{v:.2f}' for v in results[name])})")
    extra = medians["sweep"] - medians["runs by hand"]
    print(f"  the sweep's own cost: {extra:.2f} s in all, {extra / args.trials:.2f} s a trial; "
          f"{(extra - medians['parser probe']) / args.trials:.2f} s a trial beside its one parser probe "
          f"({medians['parser probe']:.2f} s)")
    if args.ray:
        ray_extra = medians["sweep --ray"] - medians["sweep"]
        print(f"  --ray beyond the local sweep: {ray_extra:.2f} s ({ray_extra / args.trials:.2f} s a trial, "
              "the cluster's start and stop included)")


if __name__ == "__main__":
    main()
