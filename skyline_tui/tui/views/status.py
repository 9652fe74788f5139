"""The status bar: device and live GPU readings on the left, profiling state on the right."""

from __future__ import annotations

from typing import Optional

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from skyline_tui.report import PHASES
from skyline_tui.tui.gpu import GpuSample
from skyline_tui.tui.state import RunState
from skyline_tui.tui.views import format as fmt

ELAPSED_SHOWN_S = 3  # a run's elapsed time appears once it is noticeably long...
TIMEOUT_SHOWN_S = 10  # ...and, past this, the timeout that will stop it (an infinite loop, say)


class StatusBar(Static):
    COMPONENT_CLASSES = {"status--busy", "status--muted", "status--failed", "status--device"}

    def show(self, device: Optional[str], on_cpu: bool, gpu: GpuSample, run: RunState,
             on_save: Optional[bool] = None, elapsed_s: Optional[float] = None,
             timeout_s: Optional[float] = None) -> None:
        """``on_save``: whether saving a file re-profiles (None: not shown).  ``elapsed_s``: how long the
        run under way has taken; shown past a couple of seconds, with the timeout once it is long."""
        def style(name: str) -> Style:
            return self.get_component_rich_style(f"status--{name}", partial=True)

        muted = style("muted")
        left = Text(no_wrap=True, overflow="ellipsis")
        left.append(device or "device N/A", style("device"))
        if on_cpu or not gpu.available:
            left.append("  GPU N/A", muted)
        else:
            left.append(f"  GPU {_or_na(gpu.utilization_percent, '%')}")
            used, total = gpu.memory_used_bytes, gpu.memory_total_bytes
            left.append(f"  mem {fmt.size(used)}/{fmt.size(total)}" if used is not None else "  mem N/A")
            left.append(f"  {_or_na(gpu.temperature_c, '°C')}")

        parts: list[Text] = []  # each a separate note, two spaces apart
        if run.phase is not None:
            step = f" {PHASES.index(run.phase) + 1}/{len(PHASES)}" if run.phase in PHASES else ""
            took = ""
            if elapsed_s is not None and elapsed_s >= ELAPSED_SHOWN_S:
                took = f" · {elapsed_s:.0f} s"
                if timeout_s and elapsed_s >= TIMEOUT_SHOWN_S:
                    took += f" of {timeout_s:.0f}"
            parts.append(Text(f"● profiling: {run.phase}{step}{took}", style("busy")))
        elif run.profiler_ended:  # what is true now, and what to do about it; the error pane says why
            parts.append(Text("✗ profiler ended · r restarts it", style("failed")))
        elif run.failed:
            parts.append(Text("✗ last run failed", style("failed")))
        if on_save is not None:
            parts.append(Text("on save ✓" if on_save else "on save ✗", muted))
        if run.last_report_at is not None:
            parts.append(Text(f"last report {run.last_report_at}", muted))
        elif run.phase is None:
            parts.append(Text("no report yet", muted))
        right = Text("  ", muted, no_wrap=True, justify="right").join(parts)

        grid = Table.grid(expand=True, padding=(0, 0, 0, 2))  # two cells between the sides, none outside
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right", width=right.cell_len + 2)
        grid.add_row(left, right)
        self.update(grid)


def _or_na(value: Optional[int], unit: str) -> str:
    return fmt.NA if value is None else f"{value}{unit}"
