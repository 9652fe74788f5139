"""Timing one batch size for the predictions (:mod:`skyline_tui.profiler.predictions.scaling`): its first timing,
one more round, and the page faults those took.

A point's faults are counted over its timed rounds only (warm-up and peak iterations make the new shapes'
first allocations, which fault whatever the allocator does), and a rejected probe's are dropped with it.  On
CPU they grow with the batch where its blocks outgrow what glibc's malloc keeps between iterations: the lstm
sample ran 52 ms at 256 with 16,920 faults an iteration (about 23 ms of it), and 3.5 ms at 16 with 13.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, TypedDict

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.faults import fault_time
from skyline_tui.profiler.memory import PEAK_ITERATIONS
from skyline_tui.profiler.memory import measure_peak as memory_peak
from skyline_tui.profiler.memory import reserved_peak
from skyline_tui.profiler.timing import TimingResult, measure_until_stable, standard_error, warm_up
from skyline_tui.profiler.workload import Workload
from skyline_tui.report import Throughput


def first_timing(work: Workload, config: ProfileConfig, run: Callable[[], Any], *, round_iterations: int,
                 budget_s: float, max_rounds: int, warmed: bool, warmup_s: float,
                 earlier: Optional[TimingResult] = None) -> TimingResult:
    """The warm-up still missing (``warmed``: after the batch's peak), then rounds until two agree, at most
    ``max_rounds``.  In the profile's process iterations only (``warmup_s`` 0): the model and allocator are
    warm, new shapes need just their first iterations; after the peak still one plain iteration (the lstm's
    first rounds after the profiler ran 20-40 % high).  ``earlier``: a probe's round, timed after the same
    warm-up, is the first round (no warm-up between)."""
    if earlier is None:
        warm = max(1, config.warmup_iterations - PEAK_ITERATIONS) if warmed else config.warmup_iterations
        work.run_user(lambda: warm_up(run, work.device, warm, warmup_s), "iteration")
    return work.run_user(lambda: measure_until_stable(
        run, work.device, round_iterations=round_iterations, min_rounds=config.min_rounds,
        tolerance=config.stability_tolerance, budget_s=budget_s, max_rounds=max_rounds, earlier=earlier),
        "iteration")


def one_round(work: Workload, run: Callable[[], Any], count: int, warmup_s: float = 0.0) -> TimingResult:
    """One warm-up iteration (and ``warmup_s``), then one timed round of ``count`` iterations."""
    work.run_user(lambda: warm_up(run, work.device, 1, warmup_s), "iteration")
    return work.run_user(lambda: measure_until_stable(run, work.device, round_iterations=count, min_rounds=1,
                                                      tolerance=0.0, budget_s=0.0, max_rounds=1), "iteration")


@dataclass(frozen=True)
class PointPlan:
    """How to measure one new batch size (decided by the sampler, which may live in another process)."""

    batch: int
    round_iterations: int
    budget_s: float  # for the first timing's rounds
    max_rounds: int
    probe_ms: Optional[float] = None  # the line's prediction: probe first (one warm-up, one round)
    probe_tolerance: float = 0.0  # the probe is the batch's time when within this share of ``probe_ms``
    peak_last: bool = False  # the peak after the timing (the CPU peak's profiler changes the allocator's regime)
    # Warm-up time before the first timing: none in the profile's process, where the model is warm; in a fresh
    # process (processes.py) the headline's, ``ProfileConfig.warmup_s``: everything there is cold.
    warmup_s: float = 0.0


@dataclass(frozen=True)
class PointResult:
    """One batch size's first measurement: its time (ms), the standard error of that time, whether two
    rounds agreed, its peak (when measured), and the page faults over its timed iterations."""

    mean_ms: float
    error_ms: float
    settled: bool
    peak_bytes: Optional[int] = None
    faults: Optional[int] = None
    reserved_peak_bytes: Optional[int] = None  # CUDA: max_memory_reserved over the peak's iteration
    iterations_run: int = 0
    load_s: float = 0.0  # building the model and inputs first (a process of its own: processes.py)


def measure_point(work: Workload, config: ProfileConfig, inputs: tuple[Any, ...], plan: PointPlan,
                  measure_peak: Optional[Callable[[Workload, tuple[Any, ...]], "tuple[int, str]"]]) -> PointResult:
    """Probe (when planned), else the peak (when ``measure_peak`` is given), then the first timing (the peak
    after it with ``plan.peak_last``).

    After a probe off the line, its round is the first timing's first (timed after the same warm-up as a
    first round) and the peak is not measured (the memory line has its points already);
    ``memory.measure_peak`` measured first is warm-up too (its iterations are the new shapes' first:
    ``first_timing``'s ``warmed``)."""
    run = lambda: work.iteration(*inputs)  # noqa: E731
    probe: Optional[TimingResult] = None
    if plan.probe_ms is not None:
        probe = one_round(work, run, plan.round_iterations, plan.warmup_s)
        if abs(probe.mean_ms - plan.probe_ms) <= plan.probe_tolerance * plan.probe_ms:
            return PointResult(mean_ms=probe.mean_ms, error_ms=0.0, settled=True, faults=probe.faults,
                               iterations_run=probe.iterations_run)
    peak = reserved = None
    peak_wanted = plan.probe_ms is None and measure_peak is not None
    if peak_wanted and not plan.peak_last and measure_peak is not None:  # peak_wanted says it is
        peak, _source = work.run_user(lambda: measure_peak(work, inputs), "iteration")
        reserved = reserved_peak(work, inputs) if measure_peak is memory_peak else None
    warmed = plan.probe_ms is not None or (peak is not None and measure_peak is memory_peak)
    result = first_timing(work, config, run, round_iterations=plan.round_iterations, budget_s=plan.budget_s,
                          max_rounds=plan.max_rounds, warmed=warmed, warmup_s=plan.warmup_s, earlier=probe)
    if peak_wanted and plan.peak_last and measure_peak is not None:
        peak, _source = work.run_user(lambda: measure_peak(work, inputs), "iteration")
        reserved = reserved_peak(work, inputs) if measure_peak is memory_peak else None
    return PointResult(mean_ms=result.mean_ms, error_ms=standard_error(result.stdev_ms, len(result.samples_ms)),
                       settled=result.stable, peak_bytes=None if peak is None else int(peak), faults=result.faults,
                       iterations_run=result.iterations_run, reserved_peak_bytes=reserved)


class FaultFields(TypedDict, total=False):
    """``BatchSample``'s fault fields, as keyword arguments (none where faults are not counted)."""

    page_faults_per_iteration: Optional[float]
    page_fault_ms: Optional[float]


class FaultTally:
    """Page faults and timed iterations per batch size, and what they come to an iteration."""

    def __init__(self, cpu: bool) -> None:
        self.cpu = cpu  # on a GPU the host's faults overlap the device's work: nothing to name
        self._counts: dict[int, tuple[int, int]] = {}

    def add(self, batch: int, result: "TimingResult | PointResult") -> None:
        if result.faults is not None:
            faults, iterations = self._counts.get(batch, (0, 0))
            self._counts[batch] = (faults + result.faults, iterations + result.iterations_run)

    def fields(self, batch: int, headline: Optional[Throughput] = None) -> FaultFields:
        """``BatchSample``'s fault fields for ``batch``; the profiled batch passes the throughput it reuses."""
        if not self.cpu:
            return {}
        if headline is not None:
            return {"page_faults_per_iteration": headline.page_faults_per_iteration,
                    "page_fault_ms": headline.page_fault_ms}
        faults, iterations = self._counts.get(batch, (None, 0))
        per_iteration, fault_ms = fault_time(faults, iterations)
        return {"page_faults_per_iteration": per_iteration, "page_fault_ms": fault_ms}
