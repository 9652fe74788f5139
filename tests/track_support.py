"""Running the experiments fixtures as a user runs them, and reading back what they say they logged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import FIXTURES, cli_env

EXPERIMENTS = FIXTURES / "experiments"
TRAIN = EXPERIMENTS / "train.py"


def project_copy(tmp_path: Path, *names: str) -> Path:
    """The fixtures in a fresh project folder (a pyproject.toml marks its root), so its default store is
    the test's own."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'experiment'\n")
    for name in names:
        shutil.copy(EXPERIMENTS / name, project / name)
    return project


def plain_env(**extra: str) -> dict[str, str]:
    env = cli_env()
    env.pop("SKYLINE_TUI_HISTORY", None)  # the default store under the project root, unless a test says
    env.update(extra)
    return env


def run_plainly(script: Path, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def printed_records(stdout: str) -> list[tuple[int, str, float]]:
    """The script's own account of each value it logged: its ``TRACKED {...}`` lines."""
    rows = [json.loads(line[len("TRACKED "):]) for line in stdout.splitlines() if line.startswith("TRACKED ")]
    return [(row["step"], row["name"], row["value"]) for row in rows]
