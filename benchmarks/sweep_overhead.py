"""What a sweep costs beyond its trials' own measuring (target: ≤ one torch import + 0.3 s per trial).

Measured in one run, interleaved (A B A B) because this machine drifts between runs minutes apart:

- ``import torch`` in a fresh interpreter (what one warm worker pays once per sweep);
- the trials' own work: the same N trials profiled by ONE fresh interpreter that imports what the worker
  imports, once, then forks a child per trial calling ``profiler.run.profile`` (load, throughput, memory:
  what a sweep trial does, under the same copy-on-write conditions as in the worker);
- ``skyline-tui sweep`` of those N trials on this machine, through the CLI (wall time of the command).

Overhead per trial = (sweep - in-process) / N; the in-process figure already holds the one torch import.
With ``--ray``: the same sweep on a local Ray cluster of 1 CPU (trials one after another, as locally),
whose per-trial overhead over the local sweep includes a torch import per task (each task runs a fresh
worker) and whose fixed cost is starting and stopping the cluster.
Usage: python benchmarks/sweep_overhead.py [--trials N] [--rounds R] [--ray]
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
ENTRY = REPO / "tests" / "fixtures" / "sweep" / "knobs_mlp.py"
BUDGET = ["--throughput-budget", "0.3", "--warmup", "0"]

IN_PROCESS = """
import os, sys, time
started = time.perf_counter()
import importlib
from skyline_tui.worker.child import PRELOAD_MODULES
for name in PRELOAD_MODULES:  # what the worker imports once (torch and the modules every run needs)
    importlib.import_module(name)
from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.run import profile
base = ProfileConfig(throughput_budget_s=0.3, warmup_s=0.0, breakdown=False, memory=True, health=False,
                     predictions=False)  # what commands/sweep.py trial_config asks of a trial
for hidden in range({trials}):
    pid = os.fork()  # each trial in a fresh child of a warm process, as in the worker
    if pid == 0:
        report = profile({entry!r}, None, base.replace(knobs={{"hidden": 8 + hidden}}))
        os._exit(0 if report.error is None else 1)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
print(time.perf_counter() - started)
"""


def env() -> dict[str, str]:
    variables = dict(os.environ)
    variables["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), variables.get("PYTHONPATH")]))
    return variables


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def in_process(trials: int) -> float:
    code = IN_PROCESS.format(trials=trials, entry=str(ENTRY))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env(), check=True, capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also time the Ray path on a local 1-CPU cluster")
    args = parser.parse_args()
    n = args.trials
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "sweep.yaml"
        spec.write_text(f"hidden: {{grid_search: {[8 + i for i in range(n)]}}}\n")
        sweep = [sys.executable, "-m", "skyline_tui", "sweep", str(ENTRY), str(spec), "-q", "--no-history",
                 "--json", os.devnull, *BUDGET]
        cases = {
            "import torch": lambda: wall([sys.executable, "-c", "import torch"]),
            "trials in-process": lambda: in_process(n),
            "local sweep (CLI)": lambda: wall(sweep),
        }
        if args.ray:
            cases["ray sweep (CLI)"] = lambda: wall([*sweep, "--ray", "--ray-cpus", "1"])
        times: dict[str, list[float]] = {name: [] for name in cases}
        for round_ in range(args.rounds):
            order = list(cases) if round_ % 2 == 0 else list(reversed(cases))  # A B, then B A
            for name in order:
                times[name].append(cases[name]())
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{n} trials, {args.rounds} rounds interleaved; medians in seconds")
    for name, value in median.items():
        print(f"  {name:<20} {value:7.2f}   ({', '.join(f'{v:.2f}' for v in times[name])})")
    overhead = (median["local sweep (CLI)"] - median["trials in-process"]) / n
    print(f"local sweep overhead per trial beyond the trials' own work (one torch import included in both): "
          f"{overhead:.3f} s (target ≤ 0.3 s)")
    print(f"local sweep / (trials' own work incl. one import + 0.3 s per trial): "
          f"{median['local sweep (CLI)'] / (median['trials in-process'] + 0.3 * n):.2f} (≤ 1 meets the target)")
    if "ray sweep (CLI)" in median:
        extra = median["ray sweep (CLI)"] - median["local sweep (CLI)"]
        print(f"ray sweep (local 1-CPU cluster) - local sweep: {extra:.2f} s in all, {extra / n:.2f} s per trial "
              "(cluster start/stop included)")


if __name__ == "__main__":
    main()
