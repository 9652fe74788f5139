"""The app's link to the history store: record each finished run, find what to compare it with, read past runs.

Owned by the app; :meth:`HistorySink.record` runs on a worker thread (SQLite and git, never torch), so it
keeps no state between calls: what it needs from the app (the pinned baseline) comes in as an argument and
what the app must know (the run's id, its comparison, a warning) comes back in :class:`Recorded`.  A store
that cannot be used costs one warning, never a profile.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyline_tui.comparison.changes import RunComparison, compare_runs
from skyline_tui.comparison.diff import diff_reports, label
from skyline_tui.comparison.drift import drift_between
from skyline_tui.config import ProfileConfig
from skyline_tui.history import History, HistoryError, record_run
from skyline_tui.history.lookup import learned_drift, with_drift
from skyline_tui.history.text import diff_text
from skyline_tui.report import Report


@dataclass(frozen=True)
class Recorded:
    """What recording one finished run gave: its id in the store (None: not recorded), its change against
    the baseline (None: a failed run, or nothing to compare with), and a warning to show once."""

    run_id: int | None
    comparison: RunComparison | None = None
    warning: str | None = None


class HistorySink:
    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: --no-history, nothing is recorded or compared
        # The drift learned per entry point (resolved path): (sigma, device).  Read once, then again after each
        # run is recorded (off the UI thread), so that starting a profile after a save never reads the store.
        self._drift: dict[str, tuple[float | None, str | None]] = {}

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def record(self, report: Report, config: dict[str, Any] | None = None, pinned: int | None = None) -> Recorded:
        """Record ``report`` and compare it with run ``pinned``, else the previous successful run of the same
        entry point and batch size.  Blocks: call it off the UI thread."""
        if self.path is None:
            return Recorded(None)
        warnings = io.StringIO()
        run_id = record_run(report, self.path, config=config, stream=warnings)
        warning = None if run_id is not None else warnings.getvalue().strip() or None
        self._drift[_key(report.entry_point)] = learned_drift(self.path, report.entry_point)
        comparison = None
        if report.error is None:
            try:
                comparison = self._comparison(report, run_id, pinned)
            except HistoryError as exc:
                warning = warning or f"skyline-tui: history not read: {exc}"
        return Recorded(run_id, comparison, warning)

    def _comparison(self, report: Report, run_id: int | None, pinned: int | None) -> RunComparison | None:
        if self.path is None or not self.path.is_file():
            return None
        with History(self.path, create=False) as history:
            if pinned is not None and pinned != run_id:
                return compare_runs(history.report(pinned), report, pinned, pinned=True,
                                    drift=drift_between(history, pinned, run_id))
            for run in history.runs(report.entry_point, limit=50, batch_size=report.batch_size):
                if run["error_kind"] is None and (run_id is None or run["id"] < run_id):
                    return compare_runs(history.report(run["id"]), report, run["id"],
                                        drift=drift_between(history, run["id"], run_id))
        return None

    def judging(self, config: ProfileConfig, entry: str) -> ProfileConfig:
        """``config`` with the drift between processes the store learned for ``entry`` on this machine, for the
        next profile's predictions (unchanged without a store, or before anything is learned)."""
        key = _key(entry)
        if key not in self._drift:
            self._drift[key] = learned_drift(self.path, entry)
        return with_drift(config, *self._drift[key])

    def runs(self, entry: str) -> list[dict[str, Any]]:
        """``entry``'s recorded runs, newest first."""
        if self.path is None or not self.path.is_file():
            return []
        with History(self.path, create=False) as history:
            return history.runs(entry, limit=500)

    def report(self, run_id: int) -> Report:
        assert self.path is not None
        with History(self.path, create=False) as history:
            return history.report(run_id)

    def diff(self, before_id: int, after_id: int) -> str:
        """``skyline-tui diff before_id after_id`` as text: the same judging as the command line."""
        assert self.path is not None
        with History(self.path, create=False) as history:
            before, after = history.report(before_id), history.report(after_id)
            drift = drift_between(history, before_id, after_id)
        return diff_text(diff_reports(before, after, label(before, f"run {before_id}", before_id),
                                      label(after, f"run {after_id}", after_id), drift=drift))


def _key(entry: str) -> str:
    return str(Path(entry).expanduser().resolve())
