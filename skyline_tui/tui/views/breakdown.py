"""The run-time breakdown pane: per line (most expensive first) or the module tree, bars split fwd/bwd.

In the module tree, bars and the time column are inclusive (a module and everything it calls) and the
self column is the module's own work; ``enter``/``space`` and ``←``/``→`` open and close nodes (the app
owns which are open: the table posts :class:`ToggleModule` and is handed the new rows), ``enter`` on a
leaf jumps to the line that calls it.
"""

from __future__ import annotations

from typing import Optional

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable

from skyline_tui.comparison.changes import RunComparison
from skyline_tui.comparison.diff import LineChange, ModuleChange
from skyline_tui.tui.views import format as fmt
from skyline_tui.tui.views.bars import split_bar
from skyline_tui.tui.views.delta import delta_cell
from skyline_tui.tui.views.messages import ToggleModule, TreeRoomChanged
from skyline_tui.tui.table_rows import ROW_LINE, ROW_MODULE, BreakdownRow
from skyline_tui.tui.views.table import SourceRowTable

BAR_WIDTH = 12
WIDE_BAR_WIDTH = 20
WIDE_TABLE = 80  # cells of table width from which the wider bars fit beside the code
FORWARD_GLYPH, BACKWARD_GLYPH, OTHER_GLYPH = "█", "▒", "░"
OPEN_GLYPH, CLOSED_GLYPH, LEAF_GLYPH = "▾", "▸", " "
INDENT = 2  # cells per level of the module tree


def tree_label(row: BreakdownRow) -> str:
    """A module row's label: indented by depth, with ▾ (open), ▸ (closed) or a blank (leaf)."""
    glyph = (OPEN_GLYPH if row.expanded else CLOSED_GLYPH) if row.has_children else LEAF_GLYPH
    return f"{' ' * (INDENT * row.depth)}{glyph} {row.label}"


def _change_of(row: BreakdownRow, deltas: Optional[RunComparison]) -> LineChange | ModuleChange | None:
    """A row's change against the baseline: a module's by its path, a line's by file and line; the
    optimizer and "other" rows have none."""
    if deltas is None:
        return None
    if row.kind == ROW_MODULE:
        return deltas.module(row.path) if row.path is not None else None
    return deltas.line(row.file, row.line) if row.kind == ROW_LINE and row.file and row.line else None


class BreakdownTable(SourceRowTable):
    COMPONENT_CLASSES = SourceRowTable.COMPONENT_CLASSES | {
        "breakdown--forward",
        "breakdown--backward",
        "breakdown--other",
        "breakdown--track",
        "breakdown--special",
        "breakdown--detail",
        "breakdown--slower",
        "breakdown--faster",
        "breakdown--new",
    }
    BINDINGS = [
        Binding("space", "toggle_node", "Open/close", show=False),
        Binding("right", "expand_node", "Open", show=False),
        Binding("left", "collapse_node", "Close", show=False),
    ]

    def __init__(self, *, id: Optional[str] = None, classes: Optional[str] = None) -> None:
        super().__init__(id=id, classes=classes)
        self._layout: Optional[tuple[str, bool]] = None  # (by, with a Δ column): the columns shown
        self._rows: dict[str, BreakdownRow] = {}

    @property
    def tree_rows(self) -> int:
        """How many rows the table shows without scrolling (the header takes one)."""
        return max(1, self.size.height - 1)

    def show(self, rows: Optional[list[BreakdownRow]], by: str, deltas: Optional[RunComparison] = None) -> None:
        """Render rows (None: nothing measured yet); ``by`` is "line" or "module".  ``deltas``: the change of
        each line or module against the baseline run; the Δ column appears once there is one."""
        def style(name: str) -> Style:
            return self.get_component_rich_style(f"breakdown--{name}", partial=True)

        forward, backward, other, special = style("forward"), style("backward"), style("other"), style("special")
        track = (" ", style("track"))
        with_delta = deltas is not None
        if (by, with_delta) != self._layout:
            self.clear(columns=True)
            self._layout = (by, with_delta)
            bar_header = Text.assemble((FORWARD_GLYPH, forward), "fwd ", (BACKWARD_GLYPH, backward), "bwd")
            # At 80 columns only the first columns show: the times and the share matter more than the bar.
            if by == ROW_LINE:
                self.add_column("where", key=self.LABEL_COLUMN)
                self.add_column(Text("time", justify="right"), key="ms")
                self.add_column(Text("%", justify="right"), key="share")
            else:
                self.add_column("module", key=self.LABEL_COLUMN)
                self.add_column(Text("total", justify="right"), key="ms")
                self.add_column(Text("self", justify="right"), key="self")
                self.add_column(Text("%", justify="right"), key="share")
            self.add_column(bar_header, key="bar")
            self.add_column("code" if by == ROW_LINE else "type", key="detail")
            if with_delta:
                self.add_column(Text("Δ ms", justify="right"), key="delta")
        self._rows = {row.key: row for row in rows or []}
        if rows is None:
            self.set_rows([])
            return
        # Bars are drawn to the scale of the costliest row, so the rows that matter read at a glance;
        # the % column keeps the share of the whole iteration.
        widest = max((r.forward_share + r.backward_share + r.other_share for r in rows), default=0.0) or 1.0
        bar_width = WIDE_BAR_WIDTH if self.size.width >= WIDE_TABLE else BAR_WIDTH
        table_rows = []
        for row in rows:
            bar = split_bar(
                [
                    (row.forward_share / widest, FORWARD_GLYPH, forward),
                    (row.backward_share / widest, BACKWARD_GLYPH, backward),
                    (row.other_share / widest, OTHER_GLYPH, other),
                ],
                bar_width,
                track,
            )
            share = row.forward_share + row.backward_share + row.other_share
            is_module = row.kind == ROW_MODULE
            label_style = special if row.file is None and not is_module else ""
            label = Text(tree_label(row) if is_module else row.label, label_style)
            total = Text(fmt.ms(row.total_ms), justify="right")
            percent = Text(f"{100 * share:.0f}", justify="right")
            cells: list[object] = [label, total, percent, bar]
            if by == ROW_MODULE:
                own = Text(fmt.ms(row.self_ms) if row.self_ms is not None else "", justify="right")
                cells = [label, total, own, percent, bar]
            cells.append(Text(row.detail, style("detail")))
            if with_delta:
                change = _change_of(row, deltas)
                cells.append(delta_cell(change, style("slower"), style("faster"), style("new"), style("detail")))
            table_rows.append((row.key, row.file, row.line, cells))
        self.set_rows(table_rows)

    def on_resize(self, event: events.Resize) -> None:
        if self._layout is not None and self._layout[0] == ROW_MODULE:
            self.post_message(TreeRoomChanged())

    # ---- the module tree's keys ------------------------------------------------------------------------

    def _node_at_cursor(self) -> Optional[BreakdownRow]:
        row = self._rows.get(self._key_at_cursor() or "")
        return row if row is not None and row.kind == ROW_MODULE and row.path is not None else None

    def action_toggle_node(self) -> None:
        node = self._node_at_cursor()
        if node is not None and node.has_children and node.path is not None:
            self.post_message(ToggleModule(node.path))

    def action_expand_node(self) -> None:
        node = self._node_at_cursor()
        if node is None or node.path is None:
            self.action_cursor_right()
        elif node.has_children and not node.expanded:
            self.post_message(ToggleModule(node.path, expand=True))

    def action_collapse_node(self) -> None:
        node = self._node_at_cursor()
        if node is None or node.path is None:
            self.action_cursor_left()
        elif node.has_children and node.expanded:
            self.post_message(ToggleModule(node.path, expand=False))
        elif node.parent is not None and f"module:{node.parent}" in self._rows:
            self.move_cursor(row=self.get_row_index(f"module:{node.parent}"), animate=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Textual also calls the base class's handler (a jump to the row's code) unless prevented:
        # a node opens and closes instead; a leaf still jumps.
        row = self._rows.get(event.row_key.value or "")
        if row is not None and row.kind == ROW_MODULE and row.has_children and row.path is not None:
            event.prevent_default()
            event.stop()
            self.post_message(ToggleModule(row.path))
