"""The app's view of a change: the current run against a baseline run (the previous run of the same entry
and batch size, or one the user pinned), already judged, so the panes only render it.

Torch-free and textual-free; the judging is :mod:`skyline_tui.comparison.diff`'s, so the panes and
``skyline-tui diff`` never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skyline_tui.comparison.diff import FlagChange, LineChange, ModuleChange, diff_reports
from skyline_tui.comparison.rule import SAME, UNKNOWN, Drift
from skyline_tui.report import Report

_ARROWS = {"faster": "▲", "slower": "▼", "more": "▲", "less": "▼"}


@dataclass(frozen=True)
class Change:
    """One figure's change, e.g. throughput +12 %: ``text`` is "▲ 12 % faster"."""

    percent: float  # signed, relative to the baseline
    verdict: str  # "faster" | "slower" | "more" | "less" | "same" | "unknown" (within a drift not known yet)
    direction: str  # the word the arrow stands for, kept when the verdict is "same" (within noise) or "unknown"

    @property
    def within_noise(self) -> bool:
        return self.verdict == SAME

    @property
    def within_unknown_drift(self) -> bool:
        return self.verdict == UNKNOWN

    @property
    def text(self) -> str:
        if abs(self.percent) < 0.5:
            return "= same"
        return f"{_ARROWS[self.direction]} {abs(self.percent):.0f} % {self.direction}"


@dataclass(frozen=True)
class RunComparison:
    baseline_id: int | None  # the baseline's run id in the store
    pinned: bool  # the user chose the baseline (b on the history screen), rather than "the previous run"
    throughput: Change | None
    peak: Change | None
    lines: dict[tuple[str, int], LineChange] = field(default_factory=dict)  # by the current run's (file, line)
    modules: dict[str, ModuleChange] = field(default_factory=dict)  # by module path ("" is the whole model)
    flags: tuple[FlagChange, ...] = ()  # health flags that appeared or went away since the baseline

    def line(self, file: str, line: int) -> LineChange | None:
        return self.lines.get((file, line))

    def module(self, path: str) -> ModuleChange | None:
        return self.modules.get(path)

    def new_flags(self, module: str) -> frozenset[str]:
        """The kinds of the flags on ``module`` that the baseline run did not raise."""
        return frozenset(c.kind for c in self.flags if c.module == module and c.change == "appeared")


def compare_runs(baseline: Report, current: Report, baseline_id: int | None = None,
                 pinned: bool = False, drift: Drift | None = None) -> RunComparison:
    """``drift``: between the two runs' processes, from the store (see ``diff_reports``)."""
    result = diff_reports(baseline, current, drift=drift)
    return RunComparison(
        baseline_id=baseline_id, pinned=pinned,
        throughput=_change(result.throughput, up="faster", down="slower"),
        peak=_change(result.peak, up="more", down="less"),
        lines={(c.file, c.line): c for c in result.lines if c.verdict != "gone"},
        # The diff compares modules anyway (by path and type); a module gone from the current run has no row.
        modules={c.module: c for c in result.modules if c.verdict != "gone"},
        flags=result.flags,
    )


def _change(fact: dict[str, object], *, up: str, down: str) -> Change | None:
    percent, verdict = fact["delta_percent"], fact["verdict"]
    if not isinstance(percent, float) or not isinstance(verdict, str):
        return None
    return Change(percent=percent, verdict=verdict, direction=up if percent >= 0 else down)
