"""Running ``skyline-tui sweep`` as a real subprocess, with a marker to find every process it left."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import FIXTURES, REPO, cli_env

LOGGED = FIXTURES / "sweep" / "logged_mlp.py"
# Short budgets: a trial of the tiny MLP measures for a fraction of a second.
QUICK_SWEEP_FLAGS = ["--throughput-budget", "0.2", "--warmup", "0", "-q"]


def ctrl_c_answers() -> None:
    """``preexec_fn`` for a sweep a test will Ctrl-C: SIGINT at its default, however pytest was started (a
    background job of a non-interactive shell inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt: a CI run launched with '&' failed both Ctrl-C tests on that, not on the sweep)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sweep_env(trial_log: Path, marker: str = "") -> dict[str, str]:
    env = cli_env()
    env["SWEEP_TRIAL_LOG"] = str(trial_log)
    if marker:
        env["SKYLINE_TEST_MARKER"] = marker
    return env


def sweep_command(spec: Path, *flags: str, entry: Path = LOGGED) -> list[str]:
    """Records nothing unless the test names a store: the fixtures live in the repository."""
    history = [] if "--history" in flags else ["--no-history"]
    return [sys.executable, "-m", "skyline_tui", "sweep", str(entry), str(spec), *QUICK_SWEEP_FLAGS, *history,
            *flags]


def run_sweep(spec: Path, *flags: str, env: dict[str, str], entry: Path = LOGGED,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sweep_command(spec, *flags, entry=entry), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def trial_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def pareto_by_hand(trials: list[dict[str, Any]]) -> list[bool]:
    """The definition, as a plain loop over the JSON: a successful trial is Pareto-optimal unless another
    successful trial has both more samples/s and a smaller peak."""
    good = [t for t in trials if t["error"] is None]
    return [t["error"] is None and not any(o["samples_per_second"] > t["samples_per_second"]
                                           and o["peak_bytes"] < t["peak_bytes"] for o in good)
            for t in trials]
