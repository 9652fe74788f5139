"""What changed between two training runs (``skyline-tui diff A B`` on two runs of kind ``train``): throughput,
step time (median, p90), the phases, memory and the final loss, each judged by the one rule
(:func:`skyline_tui.comparison.rule.figure_change`, with the drift between processes the store learned for the
same script, argv and source: :mod:`skyline_tui.comparison.drift`).

The bands:

- times and throughput: the two runs' noise as a share of the larger median step (:func:`relative_noise`, each
  median's own spread taken as 0: a median over many steps hardly moves within a run, what moves it is the
  drift between processes), at least :data:`MIN_NOISE_FRACTION`;
- a phase: the same share of the larger median step, not of the phase: a phase of 0.05 ms in a 40 ms step is
  timed with the step's noise, and changes the run only by what it adds to the step;
- memory: :data:`PEAK_NOISE_FRACTION` (the resident set, less steady: :data:`MIN_NOISE_FRACTION`), and the
  final loss :data:`MIN_NOISE_FRACTION`; neither drifts between
  processes as time does, but runs of the same script, argv and source still differ only by noise.

Torch-free and textual-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from skyline_tui.comparison.drift import describe
from skyline_tui.comparison.rule import (
    MIN_NOISE_FRACTION,
    PEAK_NOISE_FRACTION,
    UNKNOWN,
    Drift,
    figure_change,
    relative_noise,
)
from skyline_tui.run.summary import RunSummary

PHASES = ("forward", "backward", "optimizer", "other")
MEMORY = ("peak_allocated", "peak_reserved", "peak_rss")


@dataclass(frozen=True)
class TrainRunLabel:
    """Which training run a side of the diff is (a run id in the store)."""

    source: str  # "run 12"
    script: str
    argv: tuple[str, ...]
    created_at: Optional[str]
    id: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "script": self.script, "argv": list(self.argv),
                "created_at": self.created_at}


@dataclass(frozen=True)
class TrainDiff:
    """Each figure is ``figure_change``'s dict: before, after, delta, delta_percent, verdict."""

    a: TrainRunLabel
    b: TrainRunLabel
    noise_fraction: float
    throughput: dict[str, Any]  # samples/s: faster/slower
    step_median: dict[str, Any]  # ms: slower/faster
    step_p90: dict[str, Any]
    phases: dict[str, dict[str, Any]]  # ms per step, by PHASES
    memory: dict[str, dict[str, Any]]  # bytes, by MEMORY: more/less
    final_loss: dict[str, Any]  # higher/lower
    steps: tuple[int, int] = (0, 0)
    cautions: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "train", "a": self.a.to_dict(), "b": self.b.to_dict(), "noise_fraction": self.noise_fraction,
                "steps": {"before": self.steps[0], "after": self.steps[1]}, "throughput": self.throughput,
                "step_ms": {"median": self.step_median, "p90": self.step_p90}, "phases_ms": self.phases,
                "memory": self.memory, "final_loss": self.final_loss, "cautions": list(self.cautions)}


def diff_train_runs(a: RunSummary, b: RunSummary, label_a: TrainRunLabel, label_b: TrainRunLabel,
                    drift: Drift | None = None) -> TrainDiff:
    """``a`` is the earlier ("before") run, ``b`` the later ("after") one; ``drift`` between their processes,
    from the store (:func:`skyline_tui.comparison.drift.drift_between`)."""
    medians = [m for m in (a.step_ms.median, b.step_ms.median) if m is not None]
    fraction = relative_noise([(m, 0.0) for m in medians], drift, MIN_NOISE_FRACTION)
    largest_step = max(medians, default=0.0)
    throughput = figure_change(a.samples_per_second, b.samples_per_second, fraction, drift, up="faster", down="slower")
    step_median = figure_change(a.step_ms.median, b.step_ms.median, fraction, drift, up="slower", down="faster")
    step_p90 = figure_change(a.step_ms.p90, b.step_ms.p90, fraction, drift, up="slower", down="faster")
    phases = {}
    for name in PHASES:
        before, after = getattr(a.phases_ms, name), getattr(b.phases_ms, name)
        larger = max(abs(before or 0.0), abs(after or 0.0))
        share = fraction * largest_step / larger if larger > 0 else fraction
        phases[name] = figure_change(before, after, share, drift, up="slower", down="faster")
    steady = None if drift is None else Drift(sigma=0.0, same_source=drift.same_source)
    memory = {name: figure_change(getattr(a.memory, name), getattr(b.memory, name), _memory_band(name), steady,
                                  up="more", down="less") for name in MEMORY}
    final_loss = figure_change(a.loss.last, b.loss.last, MIN_NOISE_FRACTION, steady, up="higher", down="lower")
    verdicts = [throughput["verdict"], step_median["verdict"], step_p90["verdict"],
                *(fact["verdict"] for fact in phases.values())]
    return TrainDiff(a=label_a, b=label_b, noise_fraction=fraction, throughput=throughput, step_median=step_median,
                     step_p90=step_p90, phases=phases, memory=memory, final_loss=final_loss, steps=(a.steps, b.steps),
                     cautions=_cautions(a, b, step_median, drift, UNKNOWN in verdicts))


def _memory_band(name: str) -> float:
    # The allocator's peaks are nearly deterministic; the process's resident set is not: the same script and
    # arguments, twice here, peaked at 306.5 and 310.9 MiB (+1.4 %: libraries, the interpreter's arenas).
    return MIN_NOISE_FRACTION if name == "peak_rss" else PEAK_NOISE_FRACTION


def _cautions(a: RunSummary, b: RunSummary, step_median: dict[str, Any], drift: Drift | None,
              unknown: bool) -> tuple[str, ...]:
    out = []
    if drift is not None and drift.same_source:
        change = (f" (median step {step_median['delta_percent']:+.1f} %)"
                  if step_median.get("delta_percent") is not None else "")
        out.append(f"A and B ran the same script, arguments and source on this machine: their difference{change} is "
                   "this machine's run-to-run noise, not a change in the code")
    elif drift is not None and unknown:
        out.append(f"{describe(drift)}; run the unchanged script twice to learn it")
    for name, run in (("A", a), ("B", b)):
        if run.error is not None:
            out.append(f"{name} did not finish cleanly ({run.error.kind}: {run.error.message}): its figures cover the "
                       f"{run.steps} steps it took")
        elif run.exit_code:
            out.append(f"{name} exited with status {run.exit_code} after {run.steps} steps")
    return tuple(out)
