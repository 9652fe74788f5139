"""The summary of a supervised run, built from its events: what ``--json`` writes and the history records.

Torch-free.  ``samples_per_second`` and ``step_ms`` leave the first steps out (warm-up: the allocator, lazy
initialisation, a compile); ``phases_ms`` are means per step over the same steps, so they add up to the mean
step (``step_ms`` gives the median and p90, which do not add up).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from skyline_tui.dataclass_json import from_dict, to_dict
from skyline_tui.report import ErrorInfo, Health
from skyline_tui.run import events as ev

SUMMARY_VERSION = 1


@dataclass(frozen=True)
class StepTimes:
    median: Optional[float]
    p90: Optional[float]


@dataclass(frozen=True)
class PhaseTimes:
    forward: Optional[float]
    backward: Optional[float]
    optimizer: Optional[float]
    other: Optional[float]
    evaluation: Optional[float] = None


@dataclass(frozen=True)
class LossSummary:
    """Per step, its loss: what its first update applied (``Step.loss``; every scalar backward ran on is in its
    ``Step`` event)."""

    first: Optional[float]
    last: Optional[float]
    min: Optional[float]
    series: tuple[Optional[float], ...] = ()  # null where not finite
    first_non_finite_step: Optional[int] = None
    # The fewest and the most backward passes a step ran (a GAN's three, gradient accumulation's micro-steps,
    # an LBFGS closure's evaluations), and the fewest and the most of them summed into its loss (``Step.loss``).
    passes_per_step: tuple[int, int] = (0, 0)
    terms_per_step: tuple[int, int] = (0, 0)


def passes_per_step(steps: Iterable[ev.Step], seen: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """The fewest and the most losses a step had, over ``steps`` and what was ``seen`` before (``(0, 0)``:
    nothing yet)."""
    return _fewest_most((len(step.losses) for step in steps), seen)


def terms_per_step(steps: Iterable[ev.Step], seen: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """The fewest and the most losses summed into a step's loss, as ``passes_per_step``."""
    return _fewest_most((step.loss_terms for step in steps), seen)


def _fewest_most(counts: Iterable[int], seen: tuple[int, int]) -> tuple[int, int]:
    fewest, most = seen
    for count in counts:
        if count:
            fewest = count if not fewest else min(fewest, count)
            most = max(most, count)
    return fewest, most


def loss_note(passes: tuple[int, int], terms: tuple[int, int]) -> str:
    """Which scalar 'the loss' is when steps ran several backward passes, said wherever it is shown (the
    summary's lines, the app's loss pane); '' when each step ran one."""
    if passes[1] <= 1:
        return ""
    of = passes[1] if passes[0] == passes[1] else f"up to {passes[1]}"
    if terms == passes:
        return f"sum of its {of} backward passes a step"
    if terms[1] <= 1:  # (short: it heads the app's loss pane)
        return f"first update's pass, of {of} a step"
    summed = terms[1] if terms[0] == terms[1] else f"up to {terms[1]}"
    return f"first update's {summed} of {of} passes, summed"


@dataclass(frozen=True)
class RunMemory:
    peak_allocated: Optional[int]
    peak_reserved: Optional[int]
    peak_rss: Optional[int]


@dataclass(frozen=True)
class Evaluation:
    passes: int
    total_ms: float


@dataclass(frozen=True)
class RunSummary:
    script: str
    argv: tuple[str, ...]
    exit_code: Optional[int]
    steps: int
    samples_per_second: Optional[float]
    step_ms: StepTimes
    phases_ms: PhaseTimes
    loss: LossSummary
    memory: RunMemory
    health: Optional[Health] = None
    error: Optional[ErrorInfo] = None
    samples_from: Optional[ev.SamplesFrom] = None
    warmup_steps: int = 0
    evaluation: Optional[Evaluation] = None
    why_no_steps: Optional[str] = None
    non_finite: Optional[ev.NonFiniteSeen] = None
    torch_version: Optional[str] = None
    cwd: Optional[str] = None
    duration_s: Optional[float] = None
    version: int = SUMMARY_VERSION

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = to_dict(self)
        return data

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSummary":
        return from_dict(cls, data, where="summary")


def warmup_steps(count: int) -> int:
    """Steps left out of the rates: a fifth of a short run, at most ten."""
    return min(10, count // 5)


def first_non_finite(current: Optional[ev.NonFiniteSeen], event: ev.NonFiniteSeen) -> ev.NonFiniteSeen:
    """The NaN/Inf a run reports: the earliest; at one step, the one located at a layer (health) over the
    loss's.  The summary and the live view both keep it by this rule."""
    if current is None or event.step < current.step or (event.step == current.step and current.where is None):
        return event
    return current


def percentile(values: list[float], fraction: float) -> Optional[float]:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class SummaryBuilder:
    """Fed every event of a run; ``summary()`` at any moment (the progress line uses it too)."""

    def __init__(self, script: str, argv: tuple[str, ...]):
        self.script = script
        self.argv = argv
        self.steps: list[ev.Step] = []
        self.started: Optional[ev.ScriptStarted] = None
        self.torch: Optional[ev.TorchSeen] = None
        self.samples_from: Optional[ev.SamplesFrom] = None
        self.finished: Optional[ev.ChildFinished] = None
        self.exited: Optional[ev.ScriptExited] = None
        self.health: Optional[Health] = None
        self.non_finite: Optional[ev.NonFiniteSeen] = None
        self._peaks: list[Optional[int]] = [None, None, None]
        self._first_non_finite: Optional[int] = None

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.Step):
            self.steps.append(event)
            for i, value in enumerate((event.peak_allocated_bytes, event.reserved_bytes, event.rss_bytes)):
                if value is not None:
                    self._peaks[i] = max(self._peaks[i] or 0, value)
            if event.non_finite_losses and self._first_non_finite is None:
                self._first_non_finite = event.index
        elif isinstance(event, ev.ScriptStarted):
            self.started = event
            self.argv = event.argv
        elif isinstance(event, ev.TorchSeen):
            self.torch = event
        elif isinstance(event, ev.SamplesFrom):
            self.samples_from = event
        elif isinstance(event, ev.HealthJudged):
            self.health = event.health
        elif isinstance(event, ev.NonFiniteSeen):
            self.non_finite = first_non_finite(self.non_finite, event)
        elif isinstance(event, ev.ChildFinished):
            self.finished = event
        elif isinstance(event, ev.ScriptExited):
            self.exited = event

    def summary(self, duration_s: Optional[float] = None) -> RunSummary:
        steps = self.steps
        skip = warmup_steps(len(steps))
        kept = steps[skip:]
        walls = [s.wall_ms for s in kept]
        rates = [s.samples * 1e3 / s.wall_ms for s in kept if s.samples and s.wall_ms > 0]
        losses = [s.loss for s in steps]
        finite = [v for v in losses if v is not None]
        finished = self.finished
        peaks = list(self._peaks)
        if finished is not None:
            for i, value in enumerate((finished.peak_allocated_bytes, finished.peak_reserved_bytes,
                                       finished.peak_rss_bytes)):
                if value is not None:
                    peaks[i] = max(peaks[i] or 0, value)
        error = finished.error if finished is not None else None
        exit_code = self.exited.exit_code if self.exited is not None else None
        if error is None and self.exited is not None and finished is None and exit_code:
            error = ErrorInfo(kind="crash", message=self.exited.message)
        evaluation = Evaluation(passes=finished.evaluation_passes, total_ms=finished.evaluation_ms) \
            if finished is not None else None
        return RunSummary(
            script=self.script, argv=tuple(self.argv), exit_code=exit_code, steps=len(steps),
            samples_per_second=statistics.median(rates) if rates else None,
            step_ms=StepTimes(median=statistics.median(walls) if walls else None, p90=percentile(walls, 0.9)),
            phases_ms=_phases(kept),
            loss=LossSummary(first=finite[0] if finite else None, last=finite[-1] if finite else None,
                             min=min(finite) if finite else None, series=tuple(losses),
                             first_non_finite_step=self._first_non_finite, passes_per_step=passes_per_step(steps),
                             terms_per_step=terms_per_step(steps)),
            memory=RunMemory(peak_allocated=peaks[0], peak_reserved=peaks[1], peak_rss=peaks[2]),
            health=self.health, error=error, samples_from=self.samples_from, warmup_steps=skip,
            evaluation=evaluation,
            why_no_steps=(finished.why_no_steps if finished is not None else None) if not steps else None,
            non_finite=self.non_finite, torch_version=self.torch.torch_version if self.torch else None,
            cwd=self.started.cwd if self.started else None, duration_s=duration_s)


def _phases(steps: list[ev.Step]) -> PhaseTimes:
    if not steps:
        return PhaseTimes(None, None, None, None, None)
    n = len(steps)
    return PhaseTimes(forward=sum(s.forward_ms for s in steps) / n, backward=sum(s.backward_ms for s in steps) / n,
                      optimizer=sum(s.optimizer_ms for s in steps) / n, other=sum(s.other_ms for s in steps) / n,
                      evaluation=sum(s.evaluation_ms for s in steps) / n)

