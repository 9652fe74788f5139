"""A training-script sweep's folder: its state (which trials finished, with their results), the trials'
event, summary and log files.  ``--resume SWEEP_ID`` reads the state and runs only the trials without a
result (interrupted or never started); a failed trial is a result and is not run again.

The folder sits beside the history store (``<store folder>/sweeps/ID``), or in the system's temporary
folder when history is off.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from skyline_tui.sweep.script_trials import ScriptTrialResult, TrialState


def sweeps_folder(history: Optional[Path]) -> Path:
    return (history.parent if history is not None else Path(tempfile.gettempdir()) / "skyline-tui") / "sweeps"


def knobs_key(knobs: dict[str, Any]) -> str:
    return json.dumps(knobs, sort_keys=True, default=str)


def write_state(folder: Path, sweep_id: str, script: str, spec: str, args: list[str],
                states: list[TrialState]) -> None:
    """Atomically: a sweep killed while writing keeps the previous state."""
    document = {"sweep_id": sweep_id, "script": script, "spec": spec, "args": args,
                "trials": [{"knobs": s.trial.knobs, "argv": list(s.trial.argv),
                            "result": s.result.to_dict() if s.result is not None and not s.result.interrupted
                            else None,
                            "series": s.series if s.result is not None and not s.result.interrupted else None}
                           for s in states]}
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / "state.json.tmp"
    temporary.write_text(json.dumps(document, indent=1, allow_nan=True), encoding="utf-8")
    os.replace(temporary, folder / "state.json")


def read_state(folder: Path) -> dict[str, Any]:
    """Raises OSError or ValueError (the caller names the sweep)."""
    data = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "trials" not in data:
        raise ValueError("not a sweep state")
    return data


def restore(states: list[TrialState], saved: dict[str, Any]) -> int:
    """Give each trial the result the saved state holds for the same knobs; returns how many were restored."""
    finished = {knobs_key(t["knobs"]): t for t in saved["trials"] if t.get("result") is not None}
    restored = 0
    for state in states:
        entry = finished.get(knobs_key(state.trial.knobs))
        if entry is None:
            continue
        state.result = ScriptTrialResult.from_dict(state.trial, entry["result"])
        state.series = {name: list(values) for name, values in (entry.get("series") or {}).items()}
        state.steps = state.result.steps or 0
        state.status = "ok" if state.result.ok else "failed"
        restored += 1
    return restored
