"""The memory pane: peak against capacity, the parts of the peak, and the largest activations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from skyline_tui.comparison.changes import Change
from skyline_tui.report import MemoryBreakdown
from skyline_tui.predictions.targets import TargetPrediction
from skyline_tui.tui.views import format as fmt
from skyline_tui.tui.views.bars import split_bar
from skyline_tui.tui.views.delta import change_text
from skyline_tui.tui.table_rows import MemoryRow
from skyline_tui.tui.views.table import SourceRowTable

# (attribute of MemoryBreakdown, legend label, glyph, component class suffix); the order of the stack.
MEMORY_PARTS = (
    ("weights_bytes", "weights", "█", "weights"),
    ("gradients_bytes", "grads", "▓", "gradients"),
    ("optimizer_state_bytes", "optimizer", "▒", "optimizer"),
    ("activations_bytes", "activations", "░", "activations"),
    ("other_bytes", "other", "·", "other"),
)
LABEL_WIDTH = 11


@dataclass(frozen=True)
class _SummaryRenderable:
    """Lays the gauges out at whatever width the pane has; styles come from the widget's .tcss."""

    memory: MemoryBreakdown
    target: Optional[TargetPrediction]
    styles: dict[str, Style]
    change: Optional[Change] = None
    against: str = "previous run"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        memory, styles = self.memory, self.styles
        width = options.max_width
        gauge_width = max(6, min(40, width - LABEL_WIDTH - 28))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=LABEL_WIDTH - 1, no_wrap=True, style=styles["label"])
        grid.add_column(no_wrap=True)
        # Wrappable, so the last column gives way before the label and the gauge; each value is itself cut
        # with an ellipsis (fmt.cell), never wrapped.
        grid.add_column(no_wrap=False, overflow="ellipsis")
        capacity = memory.capacity_bytes
        grid.add_row("peak", self._gauge(memory.peak_bytes, capacity, gauge_width, styles["used"]),
                     fmt.cell(Text.assemble(fmt.size(memory.peak_bytes),
                                            (f" of {fmt.size(capacity)}" if capacity else "", styles["muted"]))))
        if self.change is not None:
            grid.add_row("change", "", fmt.cell(change_text(self.change, styles["better"], styles["worse"],
                                                            styles["muted"], self.against)))
        target = self.target
        if target is not None and not target.measured:
            fits = target.fits is not False
            style = styles["predicted"] if fits else styles["overflow"]
            if target.fits is None:
                verdict = ("?", styles["muted"])
            else:
                verdict = ("✓ fits", styles["fits"]) if target.fits else ("✗ does not fit", styles["overflow"])
            grid.add_row(f"at {target.batch_size}", self._gauge(target.peak_bytes, capacity, gauge_width, style),
                         fmt.cell(Text.assemble((fmt.size(target.peak_bytes), style), " ", verdict)))
        # Parts that overlap in time add up past the peak: the bar then spans their sum, and says so.
        whole = (memory.peak_bytes + memory.overlap_bytes) or 1
        parts = [(getattr(memory, attr) / whole, glyph, styles[css]) for attr, _, glyph, css in MEMORY_PARTS]
        note = f"of {fmt.size(memory.peak_bytes)}" if not memory.overlap_bytes else \
            f"of {fmt.size(memory.peak_bytes)} + {fmt.size(memory.overlap_bytes)} not alive at once"
        grid.add_row("parts", split_bar(parts, gauge_width, (" ", styles["track"])),
                     fmt.cell(Text(note, styles["muted"])))
        yield grid
        # The legend as a grid, as many parts per row as fit, so no entry is ever split over two lines.
        entries = [
            Text.assemble((glyph, styles[css]), f" {label} ", (fmt.size(getattr(memory, attr)), styles["muted"]))
            for attr, label, glyph, css in MEMORY_PARTS
        ]
        per_row = _legend_columns([e.cell_len for e in entries], width, gap=1)
        legend = Table.grid(padding=(0, 1))
        for _ in range(per_row):
            legend.add_column(no_wrap=True)
        for start in range(0, len(entries), per_row):
            legend.add_row(*entries[start : start + per_row])
        yield legend

    def _gauge(self, used: Optional[int], capacity: Optional[int], width: int, style: Style) -> Text:
        if used is None or not capacity:
            return Text("▕" + " " * width + "▏", self.styles["muted"])
        inner = split_bar([(min(1.0, used / capacity), "█", style)], width, ("░", self.styles["track"]))
        return Text.assemble(("▕", self.styles["muted"]), inner, ("▏", self.styles["muted"]))


def _legend_columns(lengths: list[int], width: int, gap: int) -> int:
    """The most legend entries per row whose columns (each as wide as its widest entry) fit ``width``."""
    for per_row in range(len(lengths), 1, -1):
        columns = [max(lengths[i::per_row]) for i in range(per_row)]
        if sum(columns) + gap * (per_row - 1) <= width:
            return per_row
    return 1


class MemorySummary(Static):
    COMPONENT_CLASSES = {
        "memory--label", "memory--muted", "memory--used", "memory--predicted", "memory--overflow",
        "memory--fits", "memory--track", "memory--better", "memory--worse",
        *(f"memory--{css}" for *_, css in MEMORY_PARTS),
    }

    def show(self, memory: Optional[MemoryBreakdown], target: Optional[TargetPrediction],
             change: Optional[Change] = None, against: str = "previous run") -> None:
        if memory is None:
            self.update(Text("no memory measurement yet", self._style("muted")))
            return
        names = ("label", "muted", "used", "predicted", "overflow", "fits", "track", "better", "worse",
                 *(css for *_, css in MEMORY_PARTS))
        self.update(_SummaryRenderable(memory, target, {name: self._style(name) for name in names}, change, against))

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"memory--{name}", partial=True)


class ActivationTable(SourceRowTable):
    def show(self, rows: list[MemoryRow]) -> None:
        if not self.columns:
            self.add_column("largest activations", key=self.LABEL_COLUMN)
            self.add_column(Text("size", justify="right"), key="size")
            self.add_column(Text("%", justify="right"), key="share")
            self.add_column("where", key="where")
        self.set_rows(
            [
                (
                    row.key, row.file, row.line,
                    [
                        Text(row.label),
                        Text(fmt.size(row.bytes), justify="right"),
                        Text(f"{100 * row.share:.0f}", justify="right"),
                        Text(fmt.location(row.file, row.line), "dim"),
                    ],
                )
                for row in rows
            ]
        )


class MemoryPane(Vertical):
    def compose(self) -> ComposeResult:
        yield MemorySummary(id="memory-summary")
        yield ActivationTable(id="activations")

    def show_summary(self, memory: Optional[MemoryBreakdown], target: Optional[TargetPrediction],
                     change: Optional[Change] = None, against: str = "previous run") -> None:
        self.query_one(MemorySummary).show(memory, target, change, against)
