"""The metrics the script tracks (``skyline_tui.track.log``) as the live run view holds them: one bounded
series per metric name, folded from ``Metrics`` events by pure functions, and which of them the pane shows.

Each metric keeps its whole run as a :class:`~skyline_tui.tui.curve.Curve` (at most ``CURVE_POINTS``
points, as the loss does) and, exactly, its last value and the lowest and highest so far: whether a metric's
best is its min (a loss) or its max (an accuracy) is the metric's own sense, so both are shown, as the
history's ``metrics.NAME.min/.max`` columns are.  No Textual, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from skyline_tui.run import events as ev
from skyline_tui.tui.curve import Curve, curve_add


@dataclass(frozen=True)
class MetricTrace:
    name: str
    curve: Curve = field(default_factory=Curve)  # the finite values, in the order logged
    last: Optional[float] = None  # the last finite value
    last_step: Optional[int] = None  # the step it was logged at
    low: Optional[float] = None
    high: Optional[float] = None
    non_finite: int = 0  # NaN/Inf values logged (they cross the event stream as None)


def fold_metrics(traces: tuple[MetricTrace, ...], event: ev.Metrics) -> tuple[MetricTrace, ...]:
    """The traces after one batch of records; a name not seen before is added after the others (the order
    first logged, which is the order the keys step through)."""
    by_name = {trace.name: trace for trace in traces}  # dicts keep insertion order
    for step, name, value in zip(event.steps, event.names, event.values, strict=True):
        trace = by_name.get(name) or MetricTrace(name)
        if value is None:
            by_name[name] = replace(trace, non_finite=trace.non_finite + 1)
            continue
        by_name[name] = replace(
            trace, curve=curve_add(trace.curve, value), last=value, last_step=step,
            low=value if trace.low is None else min(trace.low, value),
            high=value if trace.high is None else max(trace.high, value))
    return tuple(by_name.values())


def chosen_index(traces: tuple[MetricTrace, ...], chosen: Optional[str]) -> int:
    """Where the chosen metric is; the first until one is chosen (or if the chosen name is unknown)."""
    names = [trace.name for trace in traces]
    return names.index(chosen) if chosen in names else 0


def step_choice(traces: tuple[MetricTrace, ...], chosen: Optional[str], delta: int) -> Optional[str]:
    """The metric ``delta`` places after the chosen one, going round; None while nothing was logged."""
    if not traces:
        return chosen
    return traces[(chosen_index(traces, chosen) + delta) % len(traces)].name


@dataclass(frozen=True)
class MetricShown:
    """What the metrics pane shows: the chosen metric, its place among them, its curve and figures."""

    name: str
    position: int  # 1-based
    count: int
    values: tuple[float, ...]
    last: Optional[float]
    last_step: Optional[int]
    low: Optional[float]
    high: Optional[float]
    non_finite: int


def metric_shown(traces: tuple[MetricTrace, ...], chosen: Optional[str]) -> Optional[MetricShown]:
    if not traces:
        return None
    index = chosen_index(traces, chosen)
    trace = traces[index]
    return MetricShown(trace.name, index + 1, len(traces), trace.curve.values, trace.last, trace.last_step,
                       trace.low, trace.high, trace.non_finite)
