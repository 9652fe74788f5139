"""Trials and their results: what a backend runs, what it hands back, the Pareto front and the JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from skyline_tui.config import ProfileConfig
from skyline_tui.report import ErrorInfo, Report

# Knobs ProfileConfig carries as its own fields; every other knob goes to the providers by name.
CONFIG_KNOBS = ("batch_size", "precision", "channels_last", "compile")

# Where each finished trial goes (the history store, once wired): (report, knobs) -> run id or None.
TrialSink = Callable[[Report, dict[str, Any]], Optional[int]]


@dataclass(frozen=True)
class Trial:
    index: int  # 0-based, in the spec's cross-product order
    knobs: dict[str, Any]  # every knob of this trial, constants included
    config: ProfileConfig


def make_trials(combinations: list[dict[str, Any]], base: ProfileConfig) -> list[Trial]:
    trials = []
    for index, knobs in enumerate(combinations):
        own = {k: v for k, v in knobs.items() if k in CONFIG_KNOBS}
        provider = {k: v for k, v in knobs.items() if k not in CONFIG_KNOBS}
        trials.append(Trial(index=index, knobs=dict(knobs), config=base.replace(knobs=provider or None, **own)))
    return trials


@dataclass(frozen=True)
class TrialResult:
    trial: Trial
    report: Report  # its error says why a failed trial failed; what it measured before is kept
    run_id: Optional[int] = None  # the history store's id, when recorded

    @property
    def error(self) -> Optional[ErrorInfo]:
        return self.report.error

    @property
    def ok(self) -> bool:
        return self.report.error is None and self.report.throughput is not None

    @property
    def samples_per_second(self) -> Optional[float]:
        return self.report.throughput.samples_per_second if self.report.throughput else None

    @property
    def iteration_ms(self) -> Optional[float]:
        return self.report.throughput.iteration_ms if self.report.throughput else None

    @property
    def peak_bytes(self) -> Optional[int]:
        return self.report.memory.peak_bytes if self.report.memory else None


def failed(trial: Trial, entry: str, kind: str, message: str) -> TrialResult:
    """A trial that produced no report of its own (its process or task died)."""
    return TrialResult(trial=trial, report=Report(entry_point=entry, project_root="",
                                                  error=ErrorInfo(kind=kind, message=message)))


def pareto_flags(results: list[TrialResult]) -> list[bool]:
    """For each result: is it on the Pareto front?  A successful trial is, unless another successful trial
    is both faster (samples/s) and smaller in peak memory.  A trial without a peak is compared on speed."""
    flags = []
    for mine in results:
        if not mine.ok:
            flags.append(False)
            continue
        assert mine.samples_per_second is not None
        dominated = False
        for other in results:
            if other is mine or not other.ok:
                continue
            assert other.samples_per_second is not None
            faster = other.samples_per_second > mine.samples_per_second
            smaller = (mine.peak_bytes is None or
                       (other.peak_bytes is not None and other.peak_bytes < mine.peak_bytes))
            if faster and smaller:
                dominated = True
                break
        flags.append(not dominated)
    return flags


def sweep_document(sweep_id: str, entry: str, results: list[TrialResult]) -> dict[str, Any]:
    """The ``--json`` shape: trials in spec order, each with every knob, its figures and its error."""
    ordered = sorted(results, key=lambda r: r.trial.index)
    flags = pareto_flags(ordered)
    trials = []
    for result, pareto in zip(ordered, flags, strict=True):
        error = result.error
        trials.append({
            "config": dict(result.trial.knobs),
            "samples_per_second": result.samples_per_second,
            "iteration_ms": result.iteration_ms,
            "peak_bytes": result.peak_bytes,
            "error": None if error is None else {"kind": error.kind, "message": error.message},
            "pareto": pareto,
            "run_id": result.run_id,
        })
    return {"sweep_id": sweep_id, "entry_point": entry, "trials": trials}
