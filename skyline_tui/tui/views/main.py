"""The main view: the source and log on the left, the report's panes on the right, rendered from one
:class:`~skyline_tui.tui.state.AppState`.

Attributes down: the app hands the whole state to :meth:`MainView.show` after every transition and each
pane gets the plain values it draws.  The right-hand panes are one list (:data:`RIGHT_PANES`), so a new
pane (training health, say) is one entry there plus its lines in :meth:`MainView.show`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget

from skyline_tui.comparison.changes import RunComparison
from skyline_tui.presentation import breakdown_tag
from skyline_tui.report import ErrorInfo, Report
from skyline_tui.tui.state import (
    PAST_RUN,
    AppState,
    comparison_label,
    on_screen,
    pane_note,
    predictions_are_old,
    shown_comparison,
)
from skyline_tui.predictions.targets import TargetPrediction, target_prediction
from skyline_tui.tui.views.batch import BatchControl
from skyline_tui.tui.views.breakdown import BreakdownTable
from skyline_tui.tui.views.errors import ErrorPane
from skyline_tui.tui.views.health import HealthPane
from skyline_tui.tui.views.log import LogPane
from skyline_tui.tui.views.memory import ActivationTable, MemoryPane
from skyline_tui.tui.views.messages import JumpToSource, PreviewSource
from skyline_tui.tui.module_tree import expanded_to_fit
from skyline_tui.tui.views.pane import show_freshness
from skyline_tui.tui.table_rows import ROW_LINE, activation_rows, breakdown_rows
from skyline_tui.tui.views.source import SourceView
from skyline_tui.tui.views.throughput import ThroughputPane

# (widget class, id), top to bottom.
RIGHT_PANES: tuple[tuple[type[Widget], str], ...] = (
    (ThroughputPane, "throughput"),
    (BatchControl, "batch"),
    (ErrorPane, "error"),
    (BreakdownTable, "breakdown"),
    (MemoryPane, "memory"),
    (HealthPane, "health"),  # hidden until H: it takes the breakdown's place
)
SPECIAL_ROWS = 2  # the optimizer and other rows below the module tree


def open_modules(state: AppState, table_rows: int) -> frozenset[str]:
    """The module tree's open nodes: the user's choice, else the levels that fit ``table_rows``."""
    if state.expanded_modules is not None:
        return state.expanded_modules
    breakdown = state.live.shown.breakdown if state.live.shown is not None else None
    if breakdown is None:
        return frozenset()
    return expanded_to_fit(breakdown.modules, table_rows - SPECIAL_ROWS)


def target_of(state: AppState) -> Optional[TargetPrediction]:
    """The numbers at the target batch size (measured where it is the profiled one)."""
    shown = state.live.shown
    if shown is None or shown.batch_size is None:
        return None
    return target_prediction(shown, state.target_batch_size or shown.batch_size)


class MainView(Horizontal):
    """Also the go-between of the source pane and the tables: a row chosen opens its line, a source line
    under the cursor marks its rows."""

    def __init__(self, project_root: Path, *, id: Optional[str] = None) -> None:
        super().__init__(id=id)
        self.project_root = project_root  # where the rows' relative paths point
        self._error: Optional[ErrorInfo] = None  # the error last shown: its line stays marked in its file

    def compose(self) -> ComposeResult:
        with Vertical(id="left"):
            yield SourceView(id="source")
            yield LogPane(id="log")
        with Vertical(id="right"):
            for pane, pane_id in RIGHT_PANES:
                yield pane(id=pane_id)

    def show(self, state: AppState) -> None:
        """Every pane from ``state`` (a past run in place of the live one while one is shown)."""
        comparison = shown_comparison(state)
        state = on_screen(state)
        with self.app.batch_update():
            live = state.live
            shown = live.shown
            breakdown = shown.breakdown if shown else None
            table = self.query_one(BreakdownTable)
            expanded = open_modules(state, table.tree_rows)
            table.show(breakdown_rows(breakdown, state.breakdown_by, expanded) if breakdown else None,
                       state.breakdown_by, comparison)
            by = "per line" if state.breakdown_by == ROW_LINE else "per module"
            tag = breakdown_tag(breakdown)
            show_freshness(table, f"Run time {by}" + (f" · {tag}" if tag else ""), self._note(state, "breakdown"))
            memory = shown.memory if shown else None
            self.query_one(ActivationTable).show(activation_rows(memory) if memory else [])
            health_pane = self.query_one(HealthPane)
            health_pane.show_report(shown.health if shown else None, breakdown, comparison)
            show_freshness(health_pane, "Health", self._note(state, "health"))
            older = any(run != live.error_run for _, run in live.section_runs)
            self.query_one(ErrorPane).show(live.error, kept_previous=older)
            source = self.query_one(SourceView)
            error = self._error = live.error
            source.set_error_line(error.line if error is not None and error.file == source.file else None)
            self._show_target(state, comparison, comparison_label(state))

    def show_target(self, state: AppState) -> None:
        """The panes that follow the target batch size."""
        self._show_target(on_screen(state), shown_comparison(state), comparison_label(state))

    def _show_target(self, state: AppState, comparison: Optional[RunComparison], against: str) -> None:
        shown: Optional[Report] = state.live.shown
        target = target_of(state)
        predicted = target is not None and not target.measured  # rows evaluated from the fits
        throughput = self.query_one(ThroughputPane)
        throughput.show(
            shown.throughput if shown else None, shown.predictions if shown else None,
            shown.batch_size if shown else None, target,
            change=comparison.throughput if comparison else None, against=against,
        )
        show_freshness(throughput, "Throughput", self._note(state, "throughput", shows_fit=True))
        fit_is_old = predictions_are_old(state.live, state.current_run)
        self.query_one(BatchControl).show(shown.batch_size if shown else None, target, fit_is_old=fit_is_old)
        memory_pane = self.query_one(MemoryPane)
        memory_pane.show_summary(shown.memory if shown else None, target,
                                 change=comparison.peak if comparison else None, against=against)
        show_freshness(memory_pane, "Memory", self._note(state, "memory", shows_fit=predicted))

    @staticmethod
    def _note(state: AppState, section: str, shows_fit: bool = False) -> Optional[str]:
        """The note a pane's title carries: None (fresh), 'previous run', 'measuring…', 'not measured',
        or 'fit from previous run' where ``shows_fit`` and only the predictions are older; on a past run
        from the history, 'past run #N'."""
        note = pane_note(state.live, section, state.current_run, state.run.phase is not None, shows_fit)
        past = state.history.past
        return note or (f"{PAST_RUN} #{past.run_id}" if past is not None else None)

    # ---- the source pane and the tables ----------------------------------------------------------

    def on_jump_to_source(self, message: JumpToSource) -> None:
        if message.file is None:
            self.notify("This row is not tied to a line of your code.", timeout=3)
            return
        source = self.query_one(SourceView)
        source.show_file(self.project_root / message.file, message.file, message.line)
        source.set_marked({message.line} if message.line else set())
        error = self._error
        source.set_error_line(error.line if error is not None and error.file == message.file else None)

    def on_preview_source(self, message: PreviewSource) -> None:
        source = self.query_one(SourceView)
        source.set_marked({message.line} if message.file == source.file and message.line else set())

    def on_source_view_cursor_moved(self, message: SourceView.CursorMoved) -> None:
        self.query_one(BreakdownTable).mark_location(message.file, message.line)
        self.query_one(ActivationTable).mark_location(message.file, message.line)

    def show_error_line(self, error: Optional[ErrorInfo]) -> None:
        """Open the error's file at its line (nothing to do for an error without one)."""
        self.query_one(SourceView).show_error(self.project_root, error)

    def toggle_health(self) -> None:
        """The Health pane takes the run-time table's place (it shows each module's share of the time)."""
        health = self.query_one(HealthPane)
        health.display = not health.display
        self.query_one(BreakdownTable).display = not health.display
        if health.display:
            health.focus()
