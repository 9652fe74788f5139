"""The app's history: record each finished run, show its change against a baseline, and the `h` screen.

A mixin rather than more of app.py (like profile-on-save): it needs ``entry``, ``config``, ``live``,
``current_run`` and the two render methods.  Recording and comparing run in a worker thread (SQLite and
git, never torch); the result comes back with ``call_from_thread`` and the panes are re-rendered.
"""

from __future__ import annotations

from textual import work

from skyline_tui.config import ProfileConfig
from skyline_tui.history.commands import diff_text
from skyline_tui.history.compare import RunComparison, compare_runs
from skyline_tui.history.diff import diff_reports, label
from skyline_tui.report import Report
from skyline_tui.tui.history_sink import HistorySink
from skyline_tui.tui.state import LiveState, apply_report
from skyline_tui.tui.views.history_screen import (
    DiffScreen,
    HistoryChoice,
    HistoryScreen,
)


class HistoryActions:
    # The app's, declared for the type checker (annotations only: nothing is set on the class).
    entry: str
    config: ProfileConfig
    live: LiveState
    current_run: int | None

    history: HistorySink | None
    comparison: RunComparison | None
    past_run: int | None  # the past run shown in the panes, None when they show the live one

    def _init_history(self, sink: HistorySink | None) -> None:
        self.history = sink
        self.comparison = None
        self._compared: tuple[str, str | None] | None = None  # (entry, created_at) the comparison is of
        self.past_run = None
        self._live_before_past: LiveState | None = None

    # -- recording ---------------------------------------------------------------------------------------

    def _history_take_final(self, report: Report) -> None:
        if self.history is not None and self.history.path is not None:  # cancelled runs never get here
            self._record_in_history(report)

    @work(thread=True, group="history", exit_on_error=False)
    def _record_in_history(self, report: Report) -> None:
        sink = self.history
        assert sink is not None
        run_id = sink.record(report, self.config.to_dict())
        comparison = sink.comparison(report, run_id) if report.error is None else None
        self.call_from_thread(self._history_compared, report, comparison)  # type: ignore[attr-defined]

    def _history_compared(self, report: Report, comparison: RunComparison | None) -> None:
        sink = self.history
        if sink is not None and sink.warning:
            self.notify(sink.warning, title="History", severity="warning")  # type: ignore[attr-defined]
            sink.warning = None
        if report.error is None:
            self.comparison, self._compared = comparison, (report.entry_point, report.created_at)
        self._render_report()  # type: ignore[attr-defined]

    def shown_comparison(self) -> RunComparison | None:
        """The comparison for what the panes show now (none for a past run, or an older report)."""
        shown = self.live.shown
        if self.past_run is not None or shown is None or self._compared != (shown.entry_point, shown.created_at):
            return None
        return self.comparison

    def comparison_label(self) -> str:
        comparison = self.comparison
        if comparison is None or comparison.baseline_id is None:
            return "previous run"
        return f"{'pinned' if comparison.pinned else 'previous'} run #{comparison.baseline_id}"

    # -- the h screen --------------------------------------------------------------------------------------

    def action_history(self) -> None:
        if self.history is None or self.history.path is None:
            self.notify("History is off (--no-history).", timeout=3)  # type: ignore[attr-defined]
            return
        runs = self.history.runs(self._history_entry())
        if not runs:
            self.notify("No recorded runs of this entry point yet.", timeout=3)  # type: ignore[attr-defined]
            return
        screen = HistoryScreen(runs, f"History of {self.entry}", self.history.pinned)
        self.push_screen(screen, self._history_chosen)  # type: ignore[attr-defined]

    def _history_entry(self) -> str:
        shown = self.live.shown
        return shown.entry_point if shown is not None else str(self.entry)

    def _history_chosen(self, choice: HistoryChoice) -> None:
        if choice is None or self.history is None:
            return
        action, run_id = choice
        if action == "show":
            self.show_past_run(run_id)
        elif action == "diff":
            self._show_diff(run_id)
        elif action == "pin":
            self._pin_baseline(run_id)

    def show_past_run(self, run_id: int) -> None:
        assert self.history is not None
        report = self.history.report(run_id)
        if self._live_before_past is None:
            self._live_before_past = self.live
        self.past_run = run_id
        self.live = apply_report(LiveState(), self.current_run or 0, report)
        self.sub_title = f"PAST RUN #{run_id} · {report.created_at or ''} · r re-profiles"  # type: ignore[attr-defined]
        self._render_report()  # type: ignore[attr-defined]

    def leave_past_run(self) -> None:
        """Back to the live run's panes (a new profile event, or r)."""
        if self._live_before_past is not None:
            self.live = self._live_before_past
            self._live_before_past = None
        self.past_run = None
        self.sub_title = ""  # type: ignore[attr-defined]

    def _show_diff(self, run_id: int) -> None:
        assert self.history is not None
        latest = self.history.latest
        runs = self.history.runs(self._history_entry())
        latest_id = latest[0] if latest is not None else (runs[0]["id"] if runs else None)
        if latest_id is None or latest_id == run_id:
            self.notify("That is the latest run: pick an older one to diff.", timeout=3)  # type: ignore[attr-defined]
            return
        before, after = self.history.report(run_id), self.history.report(latest_id)
        result = diff_reports(before, after, label(before, f"run {run_id}", run_id),
                              label(after, f"run {latest_id}", latest_id))
        self.push_screen(DiffScreen(diff_text(result), f"Run #{run_id} → latest #{latest_id}"))  # type: ignore[attr-defined]

    def _pin_baseline(self, run_id: int) -> None:
        assert self.history is not None
        self.history.pinned = run_id
        shown = self.live.shown
        if shown is not None and self.past_run is None and shown.throughput is not None:
            self.comparison = compare_runs(self.history.report(run_id), shown, run_id, pinned=True)
            self._compared = (shown.entry_point, shown.created_at)
        self.notify(f"Δ now compares with run #{run_id}", timeout=3)  # type: ignore[attr-defined]
        self._render_report()  # type: ignore[attr-defined]
