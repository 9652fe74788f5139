"""Running a fixture training script under ``skyline-tui run`` as a user does, and reading what it printed."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
TRAIN = Path(__file__).resolve().parent / "fixtures" / "train"


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("SKYLINE_TUI_HISTORY", None)
    return env


def read_pty(master: int, deadline: float) -> Optional[bytes]:
    """What a pseudo-terminal has to read, waiting at most until ``deadline`` (``time.monotonic()``): b"" when
    nothing came by then (a blocking read would wait past any deadline for a run that hangs), None once it is
    closed."""
    ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
    if not ready:
        return b""
    try:
        chunk = os.read(master, 1 << 16)
    except OSError:  # the other side is gone
        return None
    return chunk or None


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "skyline_tui", "run", *args]


@dataclass
class Outcome:
    process: subprocess.CompletedProcess[str]
    summary: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "step"]

    @property
    def stdout(self) -> str:
        return self.process.stdout


def run_script(tmp_path: Path, script: str, *args: str, options: tuple[str, ...] = (),
               cwd: Optional[Path] = None, timeout: float = 300) -> Outcome:
    summary, events = tmp_path / "summary.json", tmp_path / "events.jsonl"
    target = tuple(script.split()) if script.startswith("-m ") else (str(TRAIN / script),)
    process = subprocess.run(
        command("--json", str(summary), "--events", str(events), "--no-history", *options, *target, *args),
        cwd=cwd or tmp_path, env=environment(), capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL)
    assert summary.exists(), process.stderr
    return Outcome(process, json.loads(summary.read_text()),
                   [json.loads(line) for line in events.read_text().splitlines()])


def printed(stdout: str, word: str = "LOSS") -> list[float]:
    """What the script printed after ``word`` on each STEP line, as it printed it (repr of a float)."""
    return [float(m) for m in re.findall(rf"^STEP \d+ (?:.* )?{word} (\S+)", stdout, re.MULTILINE)]


def printed_ms(stdout: str) -> list[float]:
    return [float(m) for m in re.findall(r" MS (\S+)$", stdout, re.MULTILINE)]


def step_count(stdout: str) -> int:
    return len(re.findall(r"^STEP \d+ ", stdout, re.MULTILINE))


def line_of(script: str, marker: str) -> int:
    lines = (TRAIN / script).read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text)
