"""The throughput pane: measured samples/s and iteration time, the fitted maximum, the target batch."""

from __future__ import annotations

from typing import Optional

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from skyline_tui.comparison.changes import Change
from skyline_tui.presentation import fault_share, machine_cautions
from skyline_tui.report import Predictions, Throughput
from skyline_tui.predictions.targets import TargetPrediction
from skyline_tui.tui.views import format as fmt
from skyline_tui.tui.views.delta import change_text


class ThroughputPane(Static):
    COMPONENT_CLASSES = {"throughput--label", "throughput--value", "throughput--predicted", "throughput--muted",
                         "throughput--better", "throughput--worse"}

    def show(
        self,
        throughput: Optional[Throughput],
        predictions: Optional[Predictions],
        batch_size: Optional[int],
        target: Optional[TargetPrediction],
        change: Optional[Change] = None,
        against: str = "previous run",
    ) -> None:
        label = self.get_component_rich_style("throughput--label", partial=True)
        value = self.get_component_rich_style("throughput--value", partial=True)
        predicted = self.get_component_rich_style("throughput--predicted", partial=True)
        muted = self.get_component_rich_style("throughput--muted", partial=True)
        worse = self.get_component_rich_style("throughput--worse", partial=True)

        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, style=label)
        # Wrappable, so a long value (the change line) gives way before the labels do; each value is itself
        # no-wrap with an ellipsis (fmt.cell), so it is cut rather than wrapped.
        grid.add_column(no_wrap=False, overflow="ellipsis")
        if throughput is None:
            _add(grid, "throughput", Text("no measurement yet", muted))
            self.update(grid)
            return
        _add(grid, "throughput", Text.assemble((fmt.rate(throughput.samples_per_second), value), " samples/s"))
        _add(grid,
            "iteration",
            Text.assemble(
                (fmt.ms(throughput.iteration_ms), value),
                (f" ± {fmt.ms(throughput.iteration_ms_stdev)}", muted),
                ("" if throughput.stable else " · not settled", muted),
            ),
        )
        # Each caution on a row of its own: at 80 columns a tag after the time was cut to "· page faul…".
        cautions = machine_cautions(throughput, predictions, batch_size)
        if cautions.busy_cpu is not None:
            _add(grid, "caution", Text(f"busy CPU {cautions.busy_cpu:.0%}", worse))
        if cautions.faulting is not None:
            _add(grid, "caution", Text(f"page faults ≈ {fmt.ms(throughput.page_fault_ms or 0.0)} of it", worse))
        point = cautions.worst_point  # the predictions carry the allocator's cost there: the largest share is named
        if point is not None:
            _add(grid, "caution", Text(f"page faults {fault_share(point):.0%} at batch {point.batch_size:,}", worse))
        if change is not None:
            better = self.get_component_rich_style("throughput--better", partial=True)
            _add(grid, "change", change_text(change, better, worse, muted, against))
        if predictions is not None and predictions.predicted_max_samples_per_second is not None:
            fit = predictions.run_time_ms
            # The line's R² says how well it explains the points, but only while the line is the model; else the
            # measured points joined (short: at 80 columns the pane is 44 wide).
            basis = " · piecewise" if predictions.time_model == "points" else \
                (f" · R² {fit.r2:.3f}" if fit is not None else "")
            _add(grid,
                "max (fit)",
                Text.assemble(
                    (fmt.rate(predictions.predicted_max_samples_per_second), predicted),
                    " samples/s",
                    (basis, muted),
                ),
            )
        else:
            _add(grid, "max (fit)", Text(fmt.NA, muted))
        if target is not None and not target.measured:
            _add(grid,
                f"at batch {target.batch_size}",
                Text.assemble(
                    (fmt.rate(target.samples_per_second), predicted),
                    " samples/s · ",
                    (fmt.ms(target.iteration_ms), predicted),
                ),
            )
        else:
            measured = f"measured · {throughput.iterations_measured} iterations timed"
            _add(grid, f"at batch {batch_size}", Text(measured, muted))
        self.update(grid)


def _add(grid: Table, label: str, value: Text) -> None:
    grid.add_row(label, fmt.cell(value))
