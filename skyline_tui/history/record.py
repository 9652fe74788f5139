"""Recording one finished run in the history store: the one way the CLI, a sweep and the app write to it.

A run is recorded after its report is out, so a store that cannot be written (read-only, corrupt, newer)
costs one warning line naming the file, never the run.  Torch-free and textual-free.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from skyline_tui.history.store import History
from skyline_tui.report import Report

# What a recorded run was.  Only profiles so far (an entry point's providers, or a sweep's trial); the
# supervised training run adds "train" together with the store's column for it.
RUN_KINDS = ("profile",)


def record_run(report: Report, store: str | os.PathLike[str] | None, *, kind: str = "profile",
               config: dict[str, Any] | None = None, sweep_id: str | None = None,
               knobs: dict[str, Any] | None = None, stream: TextIO | None = None) -> int | None:
    """Record ``report`` (a failed run too) in the store at ``store`` and return its id; None when
    ``store`` is None (history off) or on any failure, which prints one warning line on ``stream``
    (default stderr) and never raises.  ``config`` is the run's ``ProfileConfig.to_dict()``; a sweep's
    trial also gives its ``sweep_id`` and ``knobs``."""
    if kind not in RUN_KINDS:  # a caller's mistake, not the store's: say so rather than warn
        raise ValueError(f"unknown run kind {kind!r} (known: {', '.join(RUN_KINDS)})")
    if store is None:
        return None
    try:
        with History(store) as history:
            return history.record(report, config=config, sweep_id=sweep_id, knobs=knobs)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the run's report must still go out
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if str(store) not in reason:
            reason = f"{store}: {reason}"
        print(f"skyline-tui: warning: run not recorded in history ({reason})", file=stream or sys.stderr)
        return None
