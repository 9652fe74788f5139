"""The live run's screen: the script's source and output on the left, the run's panes on the right,
rendered from one :class:`~skyline_tui.tui.run_state.RunView` (attributes down, as ``MainView`` does)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from skyline_tui.report import ErrorInfo
from skyline_tui.run.summary import loss_note
from skyline_tui.tui.run_state import (
    RunView,
    layer_rows,
    memory_readings,
    non_finite_text,
    shown_metric,
    step_figures,
)
from skyline_tui.tui.views.errors import ErrorPane
from skyline_tui.tui.views.health import HealthPane
from skyline_tui.tui.views.log import LogPane
from skyline_tui.tui.views.messages import JumpToSource
from skyline_tui.tui.views.run_panes import LossPane, MetricsPane, RunMemoryPane, StepsPane
from skyline_tui.tui.views.source import SourceView


class RunMainView(Horizontal):
    def __init__(self, project_root: Path, *, id: Optional[str] = None) -> None:
        super().__init__(id=id)
        self.project_root = project_root  # where the layers' and errors' relative paths point
        self._layers_key: object = None  # the layers pane is rebuilt only when a sample or a NaN/Inf came

    def compose(self) -> ComposeResult:
        with Vertical(id="left"):
            yield SourceView(id="source")
            yield LogPane(id="log")
        with Vertical(id="right"):
            yield StepsPane(id="steps")
            yield LossPane(id="loss")
            yield MetricsPane(id="metrics")
            yield RunMemoryPane(id="run-memory")
            yield ErrorPane(id="error")
            yield HealthPane(id="health")

    def on_mount(self) -> None:
        self.query_one(LogPane).border_title = "Output of your script"

    def show(self, view: RunView, health_schedule: Optional[str]) -> None:
        with self.app.batch_update():
            figures = step_figures(view)
            self.query_one(StepsPane).show(
                view.steps, figures.step_ms, figures.samples_per_second, figures.phases_ms, figures.final,
                [p.wall_ms for p in view.recent],
                [p.samples_per_second for p in view.recent if p.samples_per_second is not None], view.why_no_steps)
            self.query_one(LossPane).show(view.first_loss, view.last_loss, view.loss.values, view.non_finite_losses,
                                          loss_note(view.loss_passes, view.loss_terms))
            self.query_one(MetricsPane).show(shown_metric(view))
            self.query_one(RunMemoryPane).show(memory_readings(view))
            self.query_one(ErrorPane).show(view.error, kept_previous=False)
            source = self.query_one(SourceView)
            error = view.error
            source.set_error_line(error.line if error is not None and error.file == source.file else None)
            key = (view.health_samples, view.non_finite, view.located)
            if key != self._layers_key:
                self._layers_key = key
                self._show_layers(view, health_schedule)

    def _show_layers(self, view: RunView, health_schedule: Optional[str]) -> None:
        pane = self.query_one(HealthPane)
        where = view.located.where if view.located is not None else None
        rows = layer_rows(view)
        pane.border_title = f"Layers · health {health_schedule or 'off (--no-health)'}"
        pane.show(rows if rows or health_schedule is not None else None, non_finite_text(view),
                  (where.file, where.line) if where is not None else (None, None))

    # ---- the source pane ------------------------------------------------------------------------------

    def on_jump_to_source(self, message: JumpToSource) -> None:
        if message.file is None:
            self.notify("This layer is not tied to a line of your code.", timeout=3)
            return
        self.jump_to(message.file, message.line)

    def jump_to(self, file: str, line: Optional[int]) -> None:
        source = self.query_one(SourceView)
        source.show_file(self.project_root / file, file, line)
        source.set_marked({line} if line else set())

    def show_error_line(self, error: Optional[ErrorInfo]) -> None:
        """Open the error's file at its line (nothing to do for an error without one)."""
        self.query_one(SourceView).show_error(self.project_root, error)
