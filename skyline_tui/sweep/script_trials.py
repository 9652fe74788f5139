"""One trial of a training-script sweep: a ``skyline-tui run`` of the script in its own session.

The trial's process writes its events (``--events``, JSON lines: steps, tracked metrics) and its summary
(``--json``) into the sweep's folder; the parent reads the events as they grow, for the live table, and the
summary at the end.  The script's own output goes to the trial's log file (it would tear the table).  The
run records itself in the history store, with the sweep id and the trial's knobs (``SWEEP_ENV``).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

# Read by the run launcher when it records the run: which sweep the trial belongs to, and its knobs.
from skyline_tui.run.command import SWEEP_ID_ENV, SWEEP_KNOBS_ENV
from skyline_tui.sweep.script_spec import ScriptTrial

STOP_GRACE_S = 5.0  # after SIGINT, how long a trial gets to run its own handlers before SIGKILL
RECENT_STEPS = 20  # live samples/s: over the last steps


@dataclass
class TrialState:
    """What the live table shows of one trial, updated from its events."""

    trial: ScriptTrial
    status: str = "queued"  # queued, running, ok, failed, interrupted
    steps: int = 0
    recent: list[tuple[int, float]] = field(default_factory=list)  # (samples, wall_ms) of the last steps
    series: dict[str, list[float]] = field(default_factory=dict)  # metric -> values, in logged order
    result: Optional[ScriptTrialResult] = None

    @property
    def samples_per_second(self) -> Optional[float]:
        if self.result is not None:
            return self.result.samples_per_second
        samples = sum(s for s, _ms in self.recent)
        wall = sum(ms for _s, ms in self.recent)
        return samples * 1000.0 / wall if samples and wall > 0 else None

    def take(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "step":
            self.steps = max(self.steps, int(event.get("index") or 0))
            if event.get("samples") and event.get("wall_ms"):
                self.recent = [*self.recent[-(RECENT_STEPS - 1):], (int(event["samples"]), float(event["wall_ms"]))]
        elif kind == "metrics":  # run/events.py's Metrics: parallel lists
            for name, value in zip(event.get("names", ()), event.get("values", ()), strict=False):
                self.series.setdefault(name, []).append(math.nan if value is None else float(value))


@dataclass(frozen=True)
class ScriptTrialResult:
    trial: ScriptTrial
    exit_code: Optional[int]  # negative: killed by that signal; None: never started
    steps: Optional[int]
    samples_per_second: Optional[float]
    peak_bytes: Optional[int]
    metrics: dict[str, dict[str, float]]  # name -> {"last", "best"}
    run_id: Optional[int]
    error: Optional[str]
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {"config": dict(self.trial.knobs), "exit_code": self.exit_code, "steps": self.steps,
                "samples_per_second": self.samples_per_second, "peak_bytes": self.peak_bytes,
                "metrics": self.metrics, "run_id": self.run_id, "error": self.error}

    @classmethod
    def from_dict(cls, trial: ScriptTrial, data: dict[str, Any]) -> ScriptTrialResult:
        return cls(trial=trial, exit_code=data.get("exit_code"), steps=data.get("steps"),
                   samples_per_second=data.get("samples_per_second"), peak_bytes=data.get("peak_bytes"),
                   metrics=data.get("metrics") or {}, run_id=data.get("run_id"), error=data.get("error"))


def best_of(values: list[float], mode: str) -> float:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan
    return min(finite) if mode == "min" else max(finite)


def metric_summary(series: dict[str, list[float]], mode: str) -> dict[str, dict[str, float]]:
    return {name: {"last": values[-1], "best": best_of(values, mode)} for name, values in series.items() if values}


class TrialProcess:
    """A trial's ``skyline-tui run`` subprocess, in a session of its own (a stop reaches every process it
    started), and its events file read as it grows."""

    def __init__(self, state: TrialState, script: str, folder: Path, history: Optional[str], sweep_id: str,
                 env: dict[str, str], cwd: Optional[str]):
        self.state = state
        trial = state.trial
        self.events_path = folder / f"trial-{trial.index + 1}.events"
        self.summary_path = folder / f"trial-{trial.index + 1}.json"
        self.log_path = folder / f"trial-{trial.index + 1}.log"
        for stale in (self.events_path, self.summary_path):
            stale.unlink(missing_ok=True)
        record = ["--history", history] if history else ["--no-history"]
        command = [sys.executable, "-m", "skyline_tui", "run", "-q", "--json", str(self.summary_path), "--events",
                   str(self.events_path), *record, script, *trial.argv]
        child_env = dict(os.environ, **env)
        child_env[SWEEP_ID_ENV] = sweep_id
        child_env[SWEEP_KNOBS_ENV] = json.dumps(trial.knobs, sort_keys=True, default=str)
        self.history, self.sweep_id = history, sweep_id
        self._offset = 0
        self._partial = b""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=cwd, env=child_env, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        state.status = "running"
        self.stopped_at: Optional[float] = None

    def poll(self) -> Optional[int]:
        """Read what the events file gained; the exit status once the process has ended."""
        self._read_events()
        code = self.process.poll()
        if code is not None:
            self._read_events()
        return code

    def _read_events(self) -> None:
        try:
            with open(self.events_path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # a line still being written
        for line in lines:
            try:
                self.state.take(json.loads(line))
            except (ValueError, TypeError, AttributeError):
                continue  # a torn or foreign line costs that line only

    def stop(self) -> None:
        """Ctrl-C to the trial's whole session: the script's own handler runs, and the run is recorded."""
        if self.process.poll() is None and self.stopped_at is None:
            self.stopped_at = time.monotonic()
            _signal_group(self.process.pid, signal.SIGINT)

    def kill_if_overdue(self) -> None:
        if self.stopped_at is not None and time.monotonic() - self.stopped_at > STOP_GRACE_S:
            _signal_group(self.process.pid, signal.SIGKILL)

    def result(self, exit_code: int, mode: str, interrupted: bool = False) -> ScriptTrialResult:
        summary = _read_json(self.summary_path)
        state = self.state
        error = _error_text(summary, exit_code, self.log_path)
        memory = summary.get("memory") or {}
        peak = memory.get("peak_allocated") or memory.get("peak_rss")
        return ScriptTrialResult(
            trial=state.trial, exit_code=summary.get("exit_code", exit_code),
            steps=summary.get("steps", state.steps if state.steps else None),
            samples_per_second=summary.get("samples_per_second"), peak_bytes=peak,
            metrics=metric_summary(state.series, mode), run_id=recorded_run(self.history, self.sweep_id, state.trial),
            error=error, interrupted=interrupted)


def recorded_run(history: Optional[str], sweep_id: str, trial: ScriptTrial) -> Optional[int]:
    """The id the run recorded itself under: the newest run of the sweep with the trial's knobs (an
    interrupted earlier attempt of a resumed trial is older).  None without a store, or when it failed."""
    if history is None or not os.path.isfile(history):
        return None
    from skyline_tui.history.store import History, HistoryError

    want = json.loads(json.dumps(trial.knobs, sort_keys=True, default=str))
    try:
        with History(history, create=False) as store:
            for run in store.runs(sweep_id=sweep_id, kind="train"):
                if run["knobs"] == want:
                    return int(run["id"])
    except (HistoryError, OSError, sqlite3.Error):
        return None
    return None


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _error_text(summary: dict[str, Any], exit_code: int, log_path: Path) -> Optional[str]:
    error = summary.get("error")
    if isinstance(error, dict) and error.get("message"):
        return f"{error.get('kind', 'error')}: {error['message']}"
    if exit_code == 0:
        return None
    # The script's own status, as the run's summary has it (negative: killed by that signal), else the run's
    # (128 + N when signal N ended the script, as a shell says it).
    own = summary.get("exit_code")
    code: int = own if isinstance(own, int) else exit_code
    signum = -code if code < 0 else (code - 128 if code > 128 and not summary else None)
    if signum:
        hint = " (SIGKILL: the kernel's out-of-memory killer, or a kill from outside)" if signum == 9 else ""
        return f"killed by signal {signum}{hint}: {_last_line(log_path)}"
    return f"exit status {code}: {_last_line(log_path)}"


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no output)"
    return lines[-1].strip()[:200] if lines else "(no output)"
