"""A training-script sweep on the terminal (Rich, never Textual): one row per trial, live, then ranked."""

from __future__ import annotations

import math
from typing import Optional

from rich.console import Group
from rich.table import Table
from rich.text import Text

from skyline_tui.sweep.script_trials import TrialState, best_of
from skyline_tui.sweep.table import format_bytes, format_knobs, format_rate

BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24


def sparkline(values: list[float], width: int = SPARK_WIDTH) -> str:
    """The last ``width`` values as bars, scaled between their own min and max (NaN: a space)."""
    tail = values[-width:]
    finite = [v for v in tail if not math.isnan(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = high - low
    bars = []
    for value in tail:
        if math.isnan(value):
            bars.append(" ")
        else:
            level = 0 if span == 0 else round((value - low) / span * (len(BARS) - 1))
            bars.append(BARS[level])
    return "".join(bars)


def _number(value: Optional[float]) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4g}"


class ScriptSweepProgress:
    """What the live table shows; the command updates the states, Rich redraws them."""

    def __init__(self, states: list[TrialState], where: str, metric: Optional[str], mode: str):
        self.states = states
        self.where = where
        self.metric = metric
        self.mode = mode

    def __rich__(self) -> Group:
        done = sum(s.status in ("ok", "failed") for s in self.states)
        failed = sum(s.status == "failed" for s in self.states)
        head = Text(f"sweep on {self.where}: {done}/{len(self.states)} done, {failed} failed")
        return Group(head, trial_table(self.states, self.metric, self.mode))


def trial_table(states: list[TrialState], metric: Optional[str], mode: str, title: Optional[str] = None) -> Table:
    table = Table(title=title)
    name = metric or "metric"
    for column, justify in (("#", "right"), ("knobs", "left"), ("status", "left"), ("steps", "right"),
                            ("samples/s", "right"), ("peak", "right"), (f"{name} last", "right"),
                            (f"{name} best ({mode})", "right"), ("trend", "left"), ("error", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for state in states:
        series = state.series.get(metric, []) if metric else []
        result = state.result
        table.add_row(str(state.trial.index + 1), format_knobs(state.trial.knobs), state.status,
                      str(result.steps if result and result.steps is not None else state.steps or "-"),
                      format_rate(state.samples_per_second),
                      format_bytes(result.peak_bytes if result else None),
                      _number(series[-1] if series else None), _number(best_of(series, mode) if series else None),
                      sparkline(series), (result.error or "") if result else "")
    return table


def ranked(states: list[TrialState], metric: Optional[str], mode: str) -> list[TrialState]:
    """Trials that finished well first, by their best ``metric`` (per ``mode``), then the rest in order."""
    def key(state: TrialState) -> tuple[int, float, int]:
        series = state.series.get(metric, []) if metric else []
        best = best_of(series, mode) if series else math.nan
        good = state.status == "ok" and not math.isnan(best)
        return (0 if good else 1, (best if mode == "min" else -best) if good else 0.0, state.trial.index)

    return sorted(states, key=key)
