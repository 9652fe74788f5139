"""The live run's own panes: steps (time, samples/s, the phase split), the loss curve, the tracked metrics'
curve (one metric at a time), memory against capacity, and the one-line run status.  Each renders the plain
values it is given (``tui.run_state`` and ``tui.run_metrics`` compute them); sparklines are Textual's.
"""

from __future__ import annotations

from typing import Optional, Sequence

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline, Static

from skyline_tui.tui.run_metrics import MetricShown
from skyline_tui.tui.views import format as fmt
from skyline_tui.tui.views.bars import split_bar

BAR_WIDTH = 24
MEMORY_BAR_WIDTH = 8
LABEL_WIDTH = 10  # a chart's label (.run-chart-label in app.tcss)
# Each phase a glyph of its own as well as a colour, so NO_COLOR keeps them apart (as bars.py says).
PHASE_LOOK = {
    "forward": ("█", "run--forward", "fwd"),
    "backward": ("▓", "run--backward", "bwd"),
    "optimizer": ("▒", "run--optimizer", "opt"),
    "evaluation": ("░", "run--evaluation", "eval"),
    "other": ("·", "run--other", "other"),
}


class _Pane(Vertical):
    COMPONENT_CLASSES = {*(look[1] for look in PHASE_LOOK.values()), "run--label", "run--value", "run--track",
                         "run--over"}

    def style(self, name: str) -> Style:
        return self.get_component_rich_style(f"run--{name}", partial=True)


class StepsPane(_Pane):
    """The headline step time and samples/s, the phases as one split bar, and both over the recent steps."""

    def compose(self) -> ComposeResult:
        yield Static(id="steps-figures")
        yield Static(id="steps-phases")
        with Horizontal(classes="run-chart"):
            yield Label("ms/step", classes="run-chart-label")
            yield Sparkline([], id="steps-time")
        with Horizontal(classes="run-chart"):
            yield Label("samples/s", classes="run-chart-label")
            yield Sparkline([], id="steps-rate")

    def on_mount(self) -> None:
        self.border_title = "Steps"

    def show(self, steps: int, step_ms: Optional[float], samples_per_second: Optional[float],
             phases_ms: Sequence[tuple[str, float]], final: bool, recent_ms: Sequence[float],
             recent_rates: Sequence[float], why_no_steps: Optional[str] = None) -> None:
        self.border_title = "Steps · final (after warm-up)" if final else "Steps · last 20"
        figures = Text(no_wrap=True, overflow="ellipsis")
        figures.append(f"{steps:,} steps  ", self.style("label"))
        if not steps and why_no_steps:  # the run is over without one: why, rather than "N/A/step"
            figures.append(why_no_steps, self.style("label"))
        else:
            figures.append(f"{fmt.ms(step_ms)}/step", self.style("value"))
            figures.append("  ")
            figures.append(f"{fmt.rate(samples_per_second)} samples/s", self.style("value"))
        self.query_one("#steps-figures", Static).update(figures)
        total = sum(value for _, value in phases_ms)
        bar = split_bar([(value / total, PHASE_LOOK[name][0], self.style(name)) for name, value in phases_ms],
                        BAR_WIDTH, ("·", self.style("track"))) if total > 0 else Text("")
        legend = Text(no_wrap=True, overflow="ellipsis")
        legend.append_text(bar)
        legend.append("\n")
        shown = [(name, value) for name, value in phases_ms if value > 0 or name != "evaluation"]
        for i, (name, value) in enumerate(shown):
            glyph, _, short = PHASE_LOOK[name]
            # One unit for the line (narrow panes): "█fwd 28.0 ▓bwd 0.24 … ms".
            number = fmt.ms(value) if i == len(shown) - 1 else fmt.ms(value).removesuffix(" ms")
            legend.append(f"{glyph}{short} {number} ", self.style(name))
        self.query_one("#steps-phases", Static).update(legend)
        self.query_one("#steps-time", Sparkline).data = list(recent_ms)
        self.query_one("#steps-rate", Sparkline).data = list(recent_rates)


class LossPane(_Pane):
    """The loss over the whole run (a backward pass's first scalar per step)."""

    def compose(self) -> ComposeResult:
        yield Static(id="loss-figures")
        with Horizontal(classes="run-chart"):
            yield Label("loss", classes="run-chart-label")
            yield Sparkline([], id="loss-curve")

    def on_mount(self) -> None:
        self.border_title = "Loss"

    def show(self, first: Optional[float], last: Optional[float], curve: Sequence[float],
             non_finite: int, note: str = "") -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        if first is None:
            text.append("no loss yet", self.style("label"))
        else:
            text.append(f"{first:.4g} → ", self.style("label"))
            text.append(f"{last:.4g}", self.style("value"))
        if non_finite:
            text.append(f"  {non_finite} not finite", self.style("over"))
        if note and first is not None:
            text.append(f"  {note}", self.style("label"))
        self.query_one("#loss-figures", Static).update(text)
        self.query_one("#loss-curve", Sparkline).data = list(curve)


class MetricsPane(_Pane):
    """One metric the script tracked (``track.log``) over the whole run, with its last value, its min and its
    max; ``n``/``p`` choose which.  Hidden until the script logs one."""

    def compose(self) -> ComposeResult:
        yield Static(id="metrics-figures")
        with Horizontal(classes="run-chart"):
            yield Label("", id="metrics-name", classes="run-chart-label")
            yield Sparkline([], id="metrics-curve")

    def on_mount(self) -> None:
        self.border_title = "Metrics"  # hidden (app.tcss) until shown

    def show(self, shown: Optional[MetricShown]) -> None:
        self.display = shown is not None
        if shown is None:
            return
        more = " · n/p: next/previous" if shown.count > 1 else ""
        self.border_title = f"Metrics {shown.position}/{shown.count} · {shown.name}{more}"
        text = Text(no_wrap=True, overflow="ellipsis")
        if shown.last is None:
            text.append("no finite value yet", self.style("label"))
        else:
            text.append("last ", self.style("label"))
            text.append(f"{shown.last:.4g}", self.style("value"))
            text.append(f" @ step {shown.last_step}", self.style("label"))
            text.append(f" · min {shown.low:.4g} · max {shown.high:.4g}", self.style("label"))
        if shown.non_finite:
            text.append(f"  {shown.non_finite} not finite", self.style("over"))
        self.query_one("#metrics-figures", Static).update(text)
        # The label is 10 cells: a longer name is cut with an ellipsis, so a gap stays before the curve.
        label = shown.name if len(shown.name) < LABEL_WIDTH else shown.name[:LABEL_WIDTH - 2] + "…"
        self.query_one("#metrics-name", Label).update(label)
        self.query_one("#metrics-curve", Sparkline).data = list(shown.values)


class RunMemoryPane(_Pane):
    """Each reading against its capacity: (label, used, peak, capacity, capacity's name)."""

    def compose(self) -> ComposeResult:
        yield Static(id="memory-bars")

    def on_mount(self) -> None:
        self.border_title = "Memory"

    def show(self, readings: Sequence[tuple[str, Optional[int], Optional[int], Optional[int], str]]) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (label, used, peak, capacity, of) in enumerate(readings):
            if i:
                text.append("\n")
            text.append(f"{label:<6}", self.style("label"))
            if capacity and used is not None:
                over = used > capacity
                text.append_text(split_bar([(min(1.0, used / capacity), "█", self.style("over" if over else "value"))],
                                           MEMORY_BAR_WIDTH, ("·", self.style("track"))))
                text.append(" ")
            text.append(fmt.size(used), self.style("value"))
            if peak is not None:
                text.append(f" · peak {fmt.size(peak)}", self.style("label"))
            text.append(f" / {fmt.size(capacity)} {of}" if capacity else f" ({of} N/A)", self.style("label"))
        self.query_one("#memory-bars", Static).update(text)


class RunStatus(Static):
    def show(self, text: str, ended: bool) -> None:
        self.set_class(ended, "-ended")
        self.update(Text(text, no_wrap=True, overflow="ellipsis"))
