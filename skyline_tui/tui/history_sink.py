"""The app's link to the history store: record each finished run, find what to compare it with.

Owned by the app, called from a worker thread (SQLite and git, never torch).  A store that cannot be used
costs one warning (kept in :attr:`HistorySink.warning` for the app to show once), never a profile.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from skyline_tui.history import History, HistoryError, record_safely
from skyline_tui.history.compare import RunComparison, compare_runs
from skyline_tui.report import Report


class HistorySink:
    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: --no-history, nothing is recorded or compared
        self.pinned: int | None = None  # the run the user chose as the Δ baseline (b on the history screen)
        self.warning: str | None = None
        self.latest: tuple[int, Report] | None = None  # the newest run recorded by this app

    def record(self, report: Report, config: dict[str, Any] | None = None) -> int | None:
        if self.path is None:
            return None
        warnings = io.StringIO()
        run_id = record_safely(report, self.path, config=config, stream=warnings)
        if run_id is None:
            self.warning = warnings.getvalue().strip() or None
        else:
            self.latest = (run_id, report)
        return run_id

    def comparison(self, report: Report, run_id: int | None) -> RunComparison | None:
        """``report`` (run ``run_id``) against the pinned run, else the previous successful run of the same
        entry point and batch size; None when there is none."""
        if self.path is None or not self.path.is_file():
            return None
        try:
            with History(self.path, create=False) as history:
                if self.pinned is not None and self.pinned != run_id:
                    return compare_runs(history.report(self.pinned), report, self.pinned, pinned=True)
                for run in history.runs(report.entry_point, limit=50, batch_size=report.batch_size):
                    if run["error_kind"] is None and (run_id is None or run["id"] < run_id):
                        return compare_runs(history.report(run["id"]), report, run["id"])
        except HistoryError as exc:
            self.warning = f"skyline-tui: history not read: {exc}"
        return None

    def runs(self, entry: str) -> list[dict[str, Any]]:
        if self.path is None or not self.path.is_file():
            return []
        with History(self.path, create=False) as history:
            return history.runs(entry, limit=500)

    def report(self, run_id: int) -> Report:
        assert self.path is not None
        with History(self.path, create=False) as history:
            return history.report(run_id)
