"""One sweep from start to end: the trials to a backend, the live table, each finished trial recorded,
the ranked table and the JSON out (``skyline-tui sweep``; its arguments are ``commands/sweep.py``'s).

Never imports textual, nor torch in this process: the trials run in the profiling worker (or on Ray).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Optional, TextIO

from skyline_tui.config import ProfileConfig
from skyline_tui.export.report_json import write_text
from skyline_tui.history.record import record_run
from skyline_tui.report import Report
from skyline_tui.sweep.backend import BackendError, SweepBackend
from skyline_tui.sweep.results import Trial, TrialResult, TrialSink, make_trials, sweep_document

EXIT_OK, EXIT_NO_TRIAL_SUCCEEDED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def new_sweep_id() -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def trial_recorder(store: Optional[Path], base: ProfileConfig, sweep_id: str) -> Optional[TrialSink]:
    """Records each finished trial (failed ones too) with the sweep id and its knobs; None when history is
    off.  A store that cannot be written costs one warning line per trial, never the sweep."""
    if store is None:
        return None

    def record(report: Report, knobs: dict[str, Any]) -> Optional[int]:
        (trial,) = make_trials([knobs], base)
        return record_run(report, store, config=trial.config.to_dict(), sweep_id=sweep_id, knobs=knobs)

    return record


def run_sweep(entry: str, root: Optional[str], trials: list[Trial], backend: SweepBackend, *, sweep_id: str,
              sink: Optional[TrialSink] = None, quiet: bool = False, json_destination: Optional[str] = None) -> int:
    """Run ``trials`` of ``entry`` on ``backend``; returns the exit status (finished trials are printed and
    written on Ctrl-C too)."""
    from rich.console import Console
    from rich.live import Live

    from skyline_tui.sweep.table import SweepProgress, final_table

    err = sys.stderr
    entry = os.path.abspath(entry)
    progress = SweepProgress(len(trials), backend.describe())
    console = Console(stderr=True)

    def finished(result: TrialResult) -> None:
        if sink is not None:
            result = dataclasses.replace(result, run_id=sink(result.report, result.trial.knobs))
        progress.finished(result)

    interrupted = False
    try:
        if quiet:
            backend.run(entry, root, trials, finished, progress.started)
        else:
            with Live(progress, console=console, refresh_per_second=4, transient=True):
                backend.run(entry, root, trials, finished, progress.started)
    except KeyboardInterrupt:
        interrupted = True
        print(f"skyline-tui sweep: interrupted; {len(progress.results)} of {len(trials)} trials finished "
              "and are kept", file=err)
    except BackendError as exc:
        print(f"skyline-tui sweep: {exc}", file=err)
        return EXIT_USAGE
    results = progress.results
    out: TextIO = err if json_destination == "-" else sys.stdout
    Console(file=out, width=max(Console(file=out).width, 120)).print(final_table(results))
    if json_destination is not None:
        code = _write_json(sweep_document(sweep_id, entry, results), json_destination, err)
        if code:
            return code
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if any(r.ok for r in results) else EXIT_NO_TRIAL_SUCCEEDED


def _write_json(document: dict[str, object], destination: str, err: TextIO) -> int:
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    try:
        write_text(text, destination, sys.stdout)  # atomic for a file; through a device (/dev/null) or FIFO
    except OSError as exc:
        print(f"skyline-tui sweep: cannot write {destination}: {exc.strerror or exc}", file=err)
        return EXIT_NO_TRIAL_SUCCEEDED
    return 0
