"""What ``skyline-tui run`` costs a training script (not a test).

An unmodified training script times its own steps with ``time.perf_counter`` and prints their median and mean
(after its own warm-up; a health sample every few steps shows in the mean only).  It runs alone (``python
script.py``) and under ``skyline-tui run`` (``--no-health``, the default health within its 5 % budget, and
``--health-every 50``), in alternating rounds so the machine's drift hits every variant alike; each round's
ratio is the supervised median (mean) over the plain one of the same round, and the medians of those ratios are
printed.  Goals (issue 27): at most 1.02x without health, 1.05x with health.

Two models: a small MLP (a step well under a millisecond on CPU: the per-step hook cost shows most) and a
wider one (a few milliseconds).  Usage: ``python benchmarks/run_overhead.py [--rounds 5] [--steps 600]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The model, its optimizer and its batch (``width`` set before): run_hook_cost.py times the same loop in-process.
MLP = '''
torch.manual_seed(0)
torch.set_num_threads(1)
model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(64, 64), torch.randint(0, 10, (64,))
'''

SCRIPT = '''
import statistics, sys, time
import torch
import torch.nn.functional as F
from torch import nn

width, steps = int(sys.argv[1]), int(sys.argv[2])
''' + MLP + '''times = []
for step in range(steps):
    began = time.perf_counter()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    times.append(time.perf_counter() - began)
print(f"MEDIAN_MS {statistics.median(times[steps // 5:]) * 1e3!r}")
print(f"MEAN_MS {statistics.fmean(times[steps // 5:]) * 1e3!r}")
'''

VARIANTS = {
    "alone": [],
    "run --no-health": ["-m", "skyline_tui", "run", "-q", "--no-history", "--no-health"],
    "run": ["-m", "skyline_tui", "run", "-q", "--no-history"],  # health within its 5 % budget
    "run --health-every 50": ["-m", "skyline_tui", "run", "-q", "--no-history", "--health-every", "50"],
}


def step_ms(variant: list[str], script: Path, width: int, steps: int, root: Path = ROOT) -> tuple[float, float]:
    """The script's own median and mean step: a health sample every few steps shows in the mean only."""
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, *variant, str(script), str(width), str(steps)], env=env,
                          capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    return (float(done.stdout.split("MEDIAN_MS ")[1].split()[0]), float(done.stdout.split("MEAN_MS ")[1].split()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--before", metavar="DIR", help="another checkout (e.g. git archive of main): its "
                        "skyline-tui run joins each round, each variant, so before/after meet the same load")
    parser.add_argument("--widths", default="64,512", help="the MLPs' widths (comma-separated)")
    args = parser.parse_args()
    variants = dict(VARIANTS)
    roots = {name: ROOT for name in variants}
    if args.before:
        for name, argv in VARIANTS.items():
            if argv:
                variants[f"{name} (before)"] = argv
                roots[f"{name} (before)"] = Path(args.before).resolve()
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "train.py"
        script.write_text(SCRIPT)
        for width in (int(w) for w in args.widths.split(",")):
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            for round_ in range(args.rounds):
                order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
                for name in order:
                    times[name].append(step_ms(variants[name], script, width, args.steps, roots[name]))
            alone = statistics.median(median for median, _ in times["alone"])
            print(f"width {width}: the script's own median step alone {alone:.3f} ms "
                  f"({args.rounds} rounds of {args.steps} steps)")
            for name in variants:
                if name == "alone":
                    continue
                for which, i in (("median", 0), ("mean", 1)):
                    ratios = [t[i] / a[i] for t, a in zip(times[name], times["alone"])]
                    print(f"  {name:<24} {which:<6} {statistics.median(ratios):.3f}x  (rounds: "
                          + ", ".join(f"{r:.3f}" for r in ratios) + ")")


if __name__ == "__main__":
    main()
