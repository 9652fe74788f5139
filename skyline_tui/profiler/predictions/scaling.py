"""Batch-size predictions: time and peak memory measured at a few batch sizes, and fitted.

The batch sizes are chosen around the profiled one ``b`` in the order that helps most for their cost:
``2b, 4b, b/2, 8b`` (then ``b/4, b/8, ...`` only while there are too few points, e.g. after an OOM); 2b and
4b are what the UI asks about first.  The line of time against batch (weights ``1/ms²``) predicts when it
passes within ``LINE_TOLERANCE`` (or the point's noise, with the drift between processes where each batch had
one: ``time_model``) of every point; else the joined points do.  On CPU, once ``LINE_POINTS`` batches lie on
the line, the next (8b) is probed with one warm-up iteration and one round: within ``LINE_TOLERANCE`` of the
line, that is its time (8b had cost half the phase); off it, rounds follow until two agree, the probe's the first
(a curve that bends past 4b).  Never against the last segment where no line predicts (two points, one maybe
high: such probes were off by over 5 % in all 13 traced runs).  A probed batch's peak is not measured: on CPU
the capacity (RAM) is far, and the memory line has 4 points.

Never past device memory (the rules are in ``capacity.py``); an out-of-memory error is recovered from, drops
every larger candidate, and the gap to the largest batch that ran is bisected.

A time budget (``config.predictions_budget_s``) keeps this to seconds: a batch whose predicted cost does
not fit what is left is skipped once ``config.min_prediction_points`` points are in (before that the
cheapest remaining candidate is measured even when over budget: fewer points would make no fit at all).

On CPU each new batch runs in a fresh process, as a training run at that size would (``processes.py``:
allocator history changes a CPU iteration's time): warm-up, rounds until two agree (at most ``POINT_ROUNDS``),
then its peak.  Elsewhere here, its peak first (its ``PEAK_ITERATIONS`` are the new shapes' first iterations:
warm-up), the warm-up still missing (at least one after the profiler), then the rounds.  The profiled batch
reuses the throughput and the memory phase's peak.  A round lasts about as long as one of the profiled
batch's rounds: a batch 8x as slow is timed one iteration a round, not three.

Time goes only where a time is uncertain.  A point is known once its rounds agreed and ``NOISE_SIGMAS`` of
its standard errors are within ``POINT_TOLERANCE`` of its time.  The points not known yet are timed again
in interleaved passes (one warm-up iteration and one round each, alternating ascending and descending
order), and a batch's time is the median of its round means: on a shared machine load comes in bursts,
and interleaved, the batches see the same mix.  The passes get at most ``REFINE_SHARE`` times the time
the first timings took, and at most ``MAX_PASSES``: a point whose four round means do not pin it down is
in noise that more rounds in this budget will not average out.  On CPU they stop once ``LINE_POINTS``
batches lie within ``LINE_TOLERANCE`` of one line, and there are none where each batch had its own process.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Any, Callable, Optional

from skyline_tui.comparison.rule import IN_ONE_PROCESS, NOISE_SIGMAS, Drift
from skyline_tui.config import ProfileConfig
from skyline_tui.predictions.fits import (evaluate, fit_linear, iteration_ms_at, max_samples_per_second,
                                          reserved_per_allocated, time_model)
from skyline_tui.profiler.errors import ProfileError
from skyline_tui.profiler.memory import PEAK_ITERATIONS, reserved_peak
from skyline_tui.profiler.memory import measure_peak as _measure_peak
from skyline_tui.profiler.predictions.capacity import (ATTEMPT_FRACTION, CUDA_HEADROOM, capacity_for, fits_rule,
                                                       is_oom_error, max_batch_size, predicted_peak, release_after_oom)
from skyline_tui.profiler.predictions.processes import SpawnerGone
from skyline_tui.profiler.predictions.timing import FaultTally, PointPlan, PointResult, measure_point, one_round
from skyline_tui.profiler.timing import standard_error
from skyline_tui.profiler.workload import Workload
from skyline_tui.report import BatchSample, LinearFit, Predictions, Report

__all__ = ["CUDA_HEADROOM", "measure_predictions"]

MeasurePeak = Callable[[Workload, tuple[Any, ...]], "tuple[int, str]"]

PLANNED = ((2, 1), (4, 1), (1, 2), (8, 1))  # 2b, 4b, b/2, 8b as (numerator, denominator)
MAX_BISECTIONS = 3  # after an OOM, at most this many batches between the last good one and the failure
MAX_PASSES = 3  # re-timing passes, budget permitting (8 before: a noisy 2b was re-timed 8 times, 0.4 s of 1.2)
EXPLORATION_SHARE = 0.5  # of the remaining budget, per new batch, spent before the interleaved passes
REFINE_SHARE = 0.5  # of what the first timings took, for re-timing passes (under load more re-measure the load)
POINT_ROUNDS = 4  # a new batch's first timing: at most this many rounds (more only re-measure the noise)
POINT_TOLERANCE = 0.03  # a point's time is known when NOISE_SIGMAS standard errors are within 3 % of it
LINE_TOLERANCE = 0.05  # the line predicts when it is this close to every point (or within its noise)
ROUND_SCALE_LIMIT = 4  # a small batch's round: at most this many times the configured round's iterations
LINE_POINTS = 4  # enough batches to tell a line from a curve: on CPU, once they lie on one, 8b is only probed


class _OutOfMemory(Exception):
    """A batch size ran out of memory (the original error already released)."""


def measure_predictions(work: Workload, config: ProfileConfig, report: Report,
                        measure_peak: Optional[MeasurePeak] = None) -> Predictions:
    """Measure at a few batch sizes around ``work.batch_size`` and fit time and memory against batch.

    ``measure_peak`` defaults to :func:`skyline_tui.profiler.memory.measure_peak` when that exists;
    without it the samples have no peak memory and ``max_batch_size`` is bounded only by OOMs.
    """
    sampler = _Sampler(work, config, report, measure_peak or _measure_peak)
    sampler.run()
    return sampler.predictions()


class _Sampler:
    def __init__(self, work: Workload, config: ProfileConfig, report: Report,
                 measure_peak: Optional[MeasurePeak]) -> None:
        self.work = work
        self.config = config
        self.report = report
        self.measure_peak = measure_peak
        self.capacity, self.capacity_source = capacity_for(work, report)
        self.headroom = CUDA_HEADROOM if work.device.type == "cuda" else 0.0
        self.deadline = time.monotonic() + max(0.0, config.predictions_budget_s)
        self.refine_deadline = self.deadline  # set when the first timing of every batch is in
        self.samples: dict[int, BatchSample] = {}  # iteration_ms here is the first measurement
        self.rounds: dict[int, list[float]] = {}  # every round mean per batch, for the median
        self.first_error: dict[int, float] = {}  # standard error (ms) of each batch's first measurement
        self.settled: dict[int, bool] = {}  # whether the first measurement's rounds agreed
        self.faults = FaultTally(cpu=work.device.type == "cpu")  # over each batch's timed rounds
        # On CPU each new batch runs in a process of its own (processes.py): its load is part of the cost.
        self.processes = work.batch_processes if work.device.type == "cpu" and measure_peak is _measure_peak else None
        self.process_s = 0.0
        self.apart: Optional[Drift] = None  # between the processes some batches were measured in (None: all here)
        self.tried: set[int] = set()
        self.oom: Optional[int] = None
        self.bisections = 0
        b = work.batch_size
        planned = [max(1, b * num // den) for num, den in PLANNED]
        self.candidates: list[int] = [c for i, c in enumerate(planned) if c != b and c not in planned[:i]]
        # Smaller batches are cheap but far from where predictions are used: only to reach enough points.
        self.fallback: list[int] = []
        smaller = b // 4
        while smaller >= 1:
            self.fallback.append(smaller)
            smaller //= 2

    # -- the adaptive loop -------------------------------------------------------------------------------

    def run(self) -> None:
        b = self.work.batch_size
        throughput = self.report.throughput
        reuse = throughput.iteration_ms if throughput is not None else None
        error = standard_error(throughput.iteration_ms_stdev, throughput.iterations_measured) if throughput else 0.0
        try:
            self._sample(b, known_ms=reuse, known_error=error, known_settled=throughput is None or throughput.stable)
        except _OutOfMemory:
            # The profiled batch ran before; an OOM now is extra memory from a measurement.  Carry on below it.
            self._record_oom(b)
        exploring_since = time.monotonic()
        while True:
            probe = self._line_settled()
            batch = self._next_candidate()
            if batch is None:
                break
            try:
                self._sample(batch, probe=probe)
            except _OutOfMemory:
                self._record_oom(batch)
            else:
                self._narrow()  # a batch that ran below the failing one: keep bisecting the gap
        now = time.monotonic()
        self.refine_deadline = min(self.deadline, now + REFINE_SHARE * (now - exploring_since))
        self._refine()

    def _refine(self) -> None:
        """Re-time the batches off the line in interleaved passes, until the fit is tight or the budget is spent.
        Not where each batch ran in a process of its own: a pass would load and warm up a new one for each."""
        if self.processes is not None:
            return
        for number in range(MAX_PASSES):
            uncertain = self.uncertain_batches()
            if not uncertain or self._line_settled(within_noise=False):
                return
            order = sorted(uncertain, reverse=number % 2 == 1)
            if time.monotonic() + sum(self._pass_cost_s(b) for b in order) > self.refine_deadline:
                return
            for batch in order:
                try:
                    self._retime(batch)
                except _OutOfMemory:  # it ran before: memory is at the edge here, treat it as the limit
                    self._record_oom(batch)
                    for dropped in [b for b in self.samples if b >= batch]:
                        del self.samples[dropped]
                        self.rounds.pop(dropped, None)
                    break

    def uncertain_batches(self) -> list[int]:
        """The sampled batches whose time is not known within its noise yet (see the module docstring).  Never
        the profiled batch: its time is the throughput phase's, the headline the predictions must agree with."""
        return sorted(b for b in self.samples
                      if b != self.work.batch_size and self._time_of(b) > 0 and not self._known(b))

    def _line_settled(self, within_noise: bool = True) -> bool:
        """On CPU, whether ``LINE_POINTS`` batches lie on one line, each within its tolerance: the next batch is
        then probed (``measure_point``); within ``LINE_TOLERANCE`` alone (not ``within_noise``), re-timing stops (after
        that it changed the 3x/6x predictions by 0.3-1.3 % in traced runs, for 0.03-0.19 s).  Not on CUDA, where
        the larger batches near the memory that decides ``max_batch_size`` and the curve bends as the device
        fills: they are measured in full."""
        if self.work.device.type == "cuda" or self.oom is not None:
            return False
        batches = [b for b in sorted(self.samples) if self._time_of(b) > 0]
        return len(batches) >= LINE_POINTS and self._model(batches, within_noise) == "line"

    def _model(self, batches: list[int], within_noise: bool = True) -> str:
        noise = [NOISE_SIGMAS * self._error(b) if within_noise else 0.0 for b in batches]
        drift = self.apart if self.apart is not None and within_noise else IN_ONE_PROCESS
        return time_model(self.time_fit(), batches, [self._time_of(b) for b in batches],
                          [max(LINE_TOLERANCE * self._time_of(b), n) for b, n in zip(batches, noise)], drift)

    def _known(self, batch: int) -> bool:
        if len(self.rounds.get(batch, [])) < 2 and not self.settled.get(batch, True):
            return False
        return NOISE_SIGMAS * self._error(batch) <= POINT_TOLERANCE * self._time_of(batch)

    def _error(self, batch: int) -> float:
        """The standard error (ms) of the batch's time: its first measurement's, or the spread of its round
        means once repeated (how well their median is known), whichever is larger."""
        rounds = self.rounds.get(batch, [])
        error = self.first_error.get(batch, 0.0)
        return max(error, statistics.stdev(rounds) / len(rounds) ** 0.5) if len(rounds) >= 2 else error

    def _next_candidate(self) -> Optional[int]:
        need_more = len(self.samples) < max(1, self.config.min_prediction_points)
        remaining_s = self.deadline - time.monotonic()
        pending = [c for c in self.candidates if c not in self.tried and self._may_fit(c)]
        if not pending and need_more:
            pending = [c for c in self.fallback if c not in self.tried and self._may_fit(c)]
            self.candidates.extend(pending)
        if not pending:
            return None
        for batch in pending:
            if self._estimated_cost_s(batch) <= remaining_s:
                self.candidates.remove(batch)
                return batch
        if need_more:
            # Over budget but too few points for a fit: the cheapest one is still worth it.
            batch = min(pending)
            self.candidates.remove(batch)
            return batch
        return None

    def _record_oom(self, batch: int) -> None:
        self.oom = batch if self.oom is None else min(self.oom, batch)
        self.candidates = [c for c in self.candidates if c < self.oom]
        self._narrow()

    def _narrow(self) -> None:
        """Between the largest batch that ran and the smallest that ran out of memory, try the middle next
        (while bisections last), so max_batch_size rests on a measurement rather than on the fit."""
        if self.oom is None:
            return
        ran = [b for b in self.samples if b < self.oom]
        low = max(ran) if ran else 0
        if self.bisections < MAX_BISECTIONS and self.oom - low > 1 and low > 0:
            middle = (low + self.oom) // 2
            if middle not in self.tried and middle not in self.candidates:
                self.bisections += 1
                self.candidates.insert(0, middle)

    # -- predictions used to decide what to try ----------------------------------------------------------

    def _may_fit(self, batch: int) -> bool:
        if self.oom is not None and batch >= self.oom:
            return False
        predicted = predicted_peak(list(self.samples.values()), batch)
        return predicted is None or self.capacity is None or predicted <= ATTEMPT_FRACTION * self.capacity

    def _predicted_ms(self, batch: int) -> float:
        fit = self.time_fit()
        if fit is not None and fit.slope > 0:
            return max(0.0, evaluate(fit, batch) or 0.0)
        if self.samples:
            b = max(self.samples)
            return self._time_of(b) * max(1.0, batch / b)
        return 0.0

    def _round_iterations(self, batch: int) -> int:
        """Iterations in one timed round at ``batch``: enough for the round to last about as long as one of
        the profiled batch's rounds (``config.round_iterations`` iterations), at least one."""
        configured = max(1, self.config.round_iterations)
        throughput = self.report.throughput
        ms = self._time_of(batch) if batch in self.samples else self._predicted_ms(batch)
        if throughput is None or not throughput.iteration_ms > 0 or not ms > 0:
            return configured
        wanted = math.ceil(configured * throughput.iteration_ms / ms - 1e-9)
        return max(1, min(ROUND_SCALE_LIMIT * configured, wanted))

    def _iterations_per_point(self, batch: int) -> int:
        config, peak = self.config, PEAK_ITERATIONS if self.measure_peak is _measure_peak else 0
        plain = config.warmup_iterations if self.processes is not None else max(1, config.warmup_iterations - peak)
        return plain + peak + max(2, config.min_rounds) * self._round_iterations(batch)  # a first peak warms up

    def _estimated_cost_s(self, batch: int) -> float:
        return self._predicted_ms(batch) * self._iterations_per_point(batch) / 1000.0 + self.process_s

    def _pass_cost_s(self, batch: int) -> float:
        return self._time_of(batch) * (1 + self._round_iterations(batch)) / 1000.0

    # -- measuring one batch size ------------------------------------------------------------------------

    def _sample(self, batch: int, known_ms: Optional[float] = None, known_error: float = 0.0,
                known_settled: bool = True, probe: bool = False) -> None:
        self.tried.add(batch)
        work = self.work
        try:
            if known_ms is None:
                result = self._measure(batch, probe)
                self.faults.add(batch, result)
            else:  # the profiled batch: the throughput's time, and the memory phase's peaks (measured alike)
                memory = self.report.memory if self.measure_peak is _measure_peak else None
                peak, reserved = (memory.peak_bytes, memory.reserved_peak_bytes) if memory else (None, None)
                if peak is None and self.measure_peak is not None:
                    measure_peak = self.measure_peak
                    peak, _source = work.run_user(lambda: measure_peak(work, work.inputs), "iteration")
                    reserved = reserved_peak(work, work.inputs) if measure_peak is _measure_peak else None
                result = PointResult(mean_ms=known_ms, error_ms=known_error, settled=known_settled, peak_bytes=peak,
                                     reserved_peak_bytes=reserved)
            self.samples[batch] = BatchSample(batch, float(result.mean_ms), result.peak_bytes,
                                              reserved_peak_bytes=result.reserved_peak_bytes)
            self.rounds[batch] = [float(result.mean_ms)]
            self.first_error[batch] = result.error_ms
            self.settled[batch] = result.settled
        except BaseException as exc:  # noqa: BLE001 - sorted out below
            if is_oom_error(exc):
                release_after_oom(exc, work.device)
                raise _OutOfMemory() from None
            if isinstance(exc, ProfileError) and exc.info.kind == "user_code" and batch != work.batch_size:
                # This batch size does not work for this model (e.g. BatchNorm needs >1 sample): skip it.
                release_after_oom(exc, work.device)
                return
            raise

    def _measure(self, batch: int, probe: bool) -> PointResult:
        """A new batch size's first measurement: in a process of its own on CPU (processes.py), timed
        before its peak (the peak's profiler leaves the allocator in another regime); else here, the peak
        first (its iterations are warm-up), and its inputs go with this frame before the next batch is made."""
        plan = PointPlan(batch=batch, round_iterations=self._round_iterations(batch),
                         budget_s=self._point_budget(batch), max_rounds=POINT_ROUNDS,
                         probe_ms=self._predicted_ms(batch) if probe else None, probe_tolerance=LINE_TOLERANCE,
                         peak_last=self.processes is not None)
        if self.processes is not None:
            try:
                result: PointResult = self.processes.measure(self.config, plan)  # Workload holds it as Any (no circle)
                self.process_s = max(self.process_s, result.load_s)
                self.apart = Drift(self.config.drift_sigma_on(self.report.device.name if self.report.device else None))
                return result
            except SpawnerGone:
                self.processes = None  # from here on in this process, peak first
                plan = dataclasses.replace(plan, peak_last=False)
        return measure_point(self.work, self.config, self.work.make_inputs(batch), plan, self.measure_peak)

    def _retime(self, batch: int) -> None:
        work, count = self.work, self._round_iterations(batch)
        inputs: Any = None
        try:
            inputs = work.make_inputs(batch)
            result = one_round(work, lambda: work.iteration(*inputs), count)
            self.rounds[batch].append(result.mean_ms)
            self.faults.add(batch, result)
        except BaseException as exc:  # noqa: BLE001
            inputs = None
            if is_oom_error(exc):
                release_after_oom(exc, work.device)
                raise _OutOfMemory() from None
            raise
        finally:
            inputs = None  # the batch's tensors go now, before the next (maybe bigger) batch is made

    def _point_budget(self, batch: int) -> float:
        """The first timing's budget: a share of what is left per batch still to try, at most ``POINT_ROUNDS``
        rounds' worth of the batch's predicted time, at most the headline's budget."""
        config = self.config
        pending = max(1, len([c for c in self.candidates if c not in self.tried]) + 1)
        remaining = self.deadline - time.monotonic()
        rounds_s = POINT_ROUNDS * self._round_iterations(batch) * self._predicted_ms(batch) / 1000.0
        return max(0.0, min(config.throughput_budget_s, EXPLORATION_SHARE * remaining / pending,
                            rounds_s or config.throughput_budget_s))

    # -- the result --------------------------------------------------------------------------------------

    def _time_of(self, batch: int) -> float:
        rounds = self.rounds.get(batch)
        return statistics.median(rounds) if rounds else self.samples[batch].iteration_ms

    def time_fit(self) -> Optional[LinearFit]:
        batches = sorted(b for b in self.samples if self._time_of(b) > 0)
        ms = [self._time_of(b) for b in batches]
        return fit_linear(batches, ms, weights=[1.0 / (t * t) for t in ms])

    def memory_fit(self) -> Optional[LinearFit]:
        points = sorted((b, s.peak_bytes) for b, s in self.samples.items() if s.peak_bytes is not None)
        return fit_linear([b for b, _ in points], [p for _, p in points])

    def predictions(self) -> Predictions:
        time_fit = self.time_fit()
        memory_fit = self.memory_fit()
        headline = self.report.throughput
        samples = tuple(dataclasses.replace(self.samples[b], iteration_ms=self._time_of(b), **self.faults.fields(
            b, headline if b == self.work.batch_size and headline is not None else None)) for b in sorted(self.samples))
        batches = [s.batch_size for s in samples if s.iteration_ms > 0]
        model, ratio = self._model(batches), reserved_per_allocated(samples)
        prediction = Predictions(samples=samples, run_time_ms=time_fit, peak_memory_bytes=memory_fit,
                                 predicted_max_samples_per_second=None, max_batch_size=max_batch_size(
                                     list(self.samples), self.oom, self.capacity, self.headroom, memory_fit, ratio),
                                 oom_batch_size=self.oom, capacity_bytes=self.capacity, memory_headroom=self.headroom,
                                 fits_rule=fits_rule(self.headroom, self.capacity_source, ratio), time_model=model)
        largest = prediction.max_batch_size
        ms_at_max = None if largest is None else iteration_ms_at(prediction, largest)
        measured = [(s.batch_size, s.iteration_ms) for s in samples] if model == "points" else []
        return dataclasses.replace(prediction, predicted_max_samples_per_second=max_samples_per_second(
            time_fit, largest, ms_at_max, measured), time_model_drift=(self.apart or IN_ONE_PROCESS).sigma)
