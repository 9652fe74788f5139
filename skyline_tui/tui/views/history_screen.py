"""The `h` screen: this entry point's past runs with a throughput sparkline; and the diff screen.

Views only: the runs arrive as plain dicts from the store, the diff as text; what the user picks goes
back to the app as the screen's result, ``(action, run_id)`` with action "show", "diff" or "pin".
"""

from __future__ import annotations

from typing import Any, Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Sparkline, Static

from skyline_tui.history.labels import knob_labels
from skyline_tui.tui.views import format as fmt

HistoryChoice = Optional[tuple[str, int]]


class HistoryScreen(ModalScreen[HistoryChoice]):
    BINDINGS = [
        Binding("escape,q,h", "close", "Close"),
        Binding("d", "choose('diff')", "Diff vs latest"),
        Binding("b", "choose('pin')", "Pin as Δ baseline"),
    ]
    DEFAULT_CSS = """
    HistoryScreen { align: center middle; }
    #history-box { width: 90%; height: 80%; border: round $accent; background: $surface; }
    #history-sparkline { height: 3; margin: 0 1; }
    #history-runs { height: 1fr; }
    """

    def __init__(self, runs: list[dict[str, Any]], title: str, pinned: int | None = None) -> None:
        super().__init__()
        self.runs = runs  # newest first
        self.title_text = title
        self.pinned = pinned

    def compose(self) -> ComposeResult:
        ok = [run["samples_per_second"] for run in reversed(self.runs) if run["samples_per_second"] is not None]
        with Vertical(id="history-box"):
            yield Sparkline(ok, summary_function=max, id="history-sparkline")
            yield DataTable(id="history-runs", cursor_type="row")

    def on_mount(self) -> None:
        box = self.query_one("#history-box")
        box.border_title = self.title_text
        box.border_subtitle = "enter show · d diff vs latest · b pin as Δ baseline · escape close"
        table = self.query_one(DataTable)
        knobs = [" ".join(knob_labels(run.get("knobs"))) for run in self.runs]  # sweep trials: what set them apart
        for label in ("run", "time (UTC)", "batch", "samples/s", "iteration", "peak", "status") + \
                (("knobs",) if any(knobs) else ()):
            table.add_column(label, key=label)
        for run, run_knobs in zip(self.runs, knobs):
            mark = " (baseline)" if run["id"] == self.pinned else ""
            table.add_row(
                Text(f"#{run['id']}{mark}"), (run["created_at"] or "")[:19].replace("T", " "),
                str(run["batch_size"] or "-"),
                Text(fmt.rate(run["samples_per_second"]) if run["samples_per_second"] else "-", justify="right"),
                Text(fmt.ms(run["iteration_ms"]), justify="right"), Text(fmt.size(run["peak_bytes"]), justify="right"),
                run["status"], *((run_knobs,) if any(knobs) else ()), key=str(run["id"]),
            )
        table.focus()

    def _run_at_cursor(self) -> int | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or 0)

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        message.stop()
        self.action_choose("show")

    def action_choose(self, action: str) -> None:
        run_id = self._run_at_cursor()
        if run_id is not None:
            self.dismiss((action, run_id))

    def action_close(self) -> None:
        self.dismiss(None)


class DiffScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,d", "dismiss", "Close")]
    DEFAULT_CSS = """
    DiffScreen { align: center middle; }
    #diff-box { width: 95%; height: 90%; border: round $accent; background: $surface; }
    """

    def __init__(self, text: str, title: str) -> None:
        super().__init__()
        self.text = text
        self.title_text = title

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="diff-box"):
            yield Static(Text(self.text), id="diff-text")

    def on_mount(self) -> None:
        box = self.query_one("#diff-box")
        box.border_title = self.title_text
        box.border_subtitle = "escape to close"
