"""The app's history keys and recording, as an object the app owns (:class:`AppHistory`).

What changes on screen is a pure transition of the app's :class:`~skyline_tui.tui.state.AppState`
(``run_recorded``, ``past_run_shown``, ``baseline_pinned``...); this object only does what a transition
cannot: the store's I/O (through :class:`~skyline_tui.tui.history_sink.HistorySink`), the worker thread
that records a finished run, the `h` and diff screens and the notices.  It reads and replaces the state
through the two callables the app hands it, so it needs nothing else of the app.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from textual.app import App

from skyline_tui.config import ProfileConfig
from skyline_tui.report import Report
from skyline_tui.tui import state as transitions
from skyline_tui.tui.history_sink import HistorySink, Recorded
from skyline_tui.tui.state import AppState
from skyline_tui.tui.views.history_screen import DiffScreen, HistoryChoice, HistoryScreen


class AppHistory:
    def __init__(self, app: App[Any], sink: HistorySink, read_state: Callable[[], AppState],
                 write_state: Callable[[AppState], None]) -> None:
        self.sink = sink
        self._app = app  # for its worker threads, screens and notices only
        self._read_state = read_state
        self._write_state = write_state  # replaces the app's state and re-renders the panes

    # -- recording (a worker thread: SQLite and git) ---------------------------------------------------

    def record(self, report: Report, config: ProfileConfig) -> None:
        """Record a finished run (not a cancelled one) and compare it with its baseline, off the UI thread."""
        if not self.sink.enabled:
            return
        pinned = self._read_state().history.pinned  # read here, on the UI thread: the state is the app's
        work = partial(self._record, report, config.to_dict(), pinned)
        self._app.run_worker(work, thread=True, group="history", exit_on_error=False)

    def _record(self, report: Report, config: dict[str, Any], pinned: int | None) -> None:
        recorded = self.sink.record(report, config, pinned)
        self._app.call_from_thread(self._recorded, report, recorded)

    def _recorded(self, report: Report, recorded: Recorded) -> None:
        if recorded.warning:
            self._app.notify(recorded.warning, title="History", severity="warning")
        self._write_state(transitions.run_recorded(self._read_state(), report, recorded.run_id,
                                                   recorded.comparison))

    # -- the h screen ------------------------------------------------------------------------------------

    def open(self, entry: str) -> None:
        """The `h` screen: ``entry``'s past runs (the entry point as the reports name it, once there is one)."""
        if not self.sink.enabled:
            self._app.notify("History is off (--no-history).", timeout=3)
            return
        shown = self._read_state().live.shown
        runs = self.sink.runs(shown.entry_point if shown is not None else entry)
        if not runs:
            self._app.notify("No recorded runs of this entry point yet.", timeout=3)
            return
        screen = HistoryScreen(runs, f"History of {entry}", self._read_state().history.pinned)
        self._app.push_screen(screen, partial(self._chosen, newest=runs[0]["id"]))

    def _chosen(self, choice: HistoryChoice, newest: int) -> None:
        if choice is None:
            return
        action, run_id = choice
        state = self._read_state()
        if action == "show":
            self._write_state(transitions.past_run_shown(state, run_id, self.sink.report(run_id)))
        elif action == "pin":
            self._write_state(transitions.baseline_pinned(state, run_id, self.sink.report(run_id)))
            self._app.notify(f"Δ now compares with run #{run_id}", timeout=3)
        elif action == "diff":
            latest = state.history.latest_run or newest
            if latest == run_id:
                self._app.notify("That is the latest run: pick an older one to diff.", timeout=3)
                return
            self._app.push_screen(DiffScreen(self.sink.diff(run_id, latest), f"Run #{run_id} → latest #{latest}"))
