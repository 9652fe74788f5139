"""The run-time breakdown pane: per line or per module, most expensive first, bars split fwd/bwd."""

from __future__ import annotations

from typing import Optional

from rich.text import Text

from skyline_tui.history.compare import RunComparison
from skyline_tui.tui.views import format as fmt
from skyline_tui.tui.views.bars import split_bar
from skyline_tui.tui.views.delta import delta_cell
from skyline_tui.tui.views.rows import ROW_LINE, BreakdownRow
from skyline_tui.tui.views.table import SourceRowTable

BAR_WIDTH = 12
WIDE_BAR_WIDTH = 20
WIDE_TABLE = 80  # cells of table width from which the wider bars fit beside the code
FORWARD_GLYPH, BACKWARD_GLYPH, OTHER_GLYPH = "█", "▒", "░"


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

    def show(self, rows: Optional[list[BreakdownRow]], by: str, deltas: Optional[RunComparison] = None) -> None:
        """Render rows (None: nothing measured yet); ``by`` is "line" or "module".  ``deltas``: the change of
        each line against the baseline run; the Δ column appears once there is one."""
        style = lambda name: self.get_component_rich_style(f"breakdown--{name}", partial=True)  # noqa: E731
        forward, backward, other, special = style("forward"), style("backward"), style("other"), style("special")
        track = (" ", style("track"))
        if not self.columns:
            self.add_column("where", key=self.LABEL_COLUMN)
            title = Text.assemble((FORWARD_GLYPH, forward), "fwd ", (BACKWARD_GLYPH, backward), "bwd")
            self.add_column(title, key="bar")
            self.add_column(Text("time", justify="right"), key="ms")
            self.add_column(Text("%", justify="right"), key="share")
            self.add_column("code", key="detail")
        if deltas is not None and "delta" not in self.columns:
            self.add_column(Text("Δ ms", justify="right"), key="delta")
        self.columns["detail"].label = Text("code" if by == ROW_LINE else "type")
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
            label = Text(row.label, special if row.file is None else "")
            cells = [
                label,
                bar,
                Text(fmt.ms(row.total_ms), justify="right"),
                Text(f"{100 * share:.0f}", justify="right"),
                Text(row.detail, style("detail")),
            ]
            if "delta" in self.columns:
                change = deltas.line(row.file, row.line) if deltas and row.file and row.line else None
                cells.append(delta_cell(change, style("slower"), style("faster"), style("new"), style("detail")))
            table_rows.append((row.key, row.file, row.line, cells))
        self.set_rows(table_rows)
