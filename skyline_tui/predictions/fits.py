"""Batch-size predictions from a report's measured batch sizes and linear fits: pure arithmetic, no torch.

The profiler measures the iteration time and peak memory at a few batch sizes and fits
``iteration_ms(b) = slope·b + bias`` and ``peak_bytes(b) = slope·b + bias`` over them
(:mod:`skyline_tui.profiler.predictions.scaling`).  The UI moves a target batch size and asks this module what
follows from it, and the largest batch predicted to fit in memory.

Iteration time is not always a straight line: on a GPU a small batch leaves it idle (the time barely grows
until the batch fills it), a batch whose activations outgrow a cache steps up, and on CPU glibc's malloc
can make one batch size 2x slower than its neighbours.  So the profiler checks the line against its own
measurements (:func:`time_model`, by the comparison rule: each point's noise and the drift between the
processes that measured them): where it passes within their noise of every point, the line predicts
(it averages the points' noise); where it does not, time is read off the measured points instead, joined
between neighbours and continued along the nearest segment beyond them (:func:`interpolated`).  The report
says which (``Predictions.time_model``).  Memory grows linearly with the batch, so it always uses the line.

Every function returns ``None`` when the answer is unknown (no fit, no capacity) or meaningless (a
non-positive time slope has no maximum throughput).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from skyline_tui.comparison.rule import NOISE_SIGMAS, SAME, UNKNOWN, Drift, spread, verdict
from skyline_tui.report import BatchSample, LinearFit, Predictions

__all__ = [
    "fit_linear",
    "evaluate",
    "iteration_ms_at",
    "interpolated",
    "time_model",
    "peak_bytes_at",
    "max_samples_per_second",
    "MIN_R2_FOR_MAX",
    "largest_batch_that_fits",
    "reserved_per_allocated",
]


def fit_linear(xs: Sequence[float], ys: Sequence[float],
               weights: Optional[Sequence[float]] = None) -> Optional[LinearFit]:
    """Least squares ``y = slope·x + bias`` with its coefficient of determination R².

    ``weights`` (optional, positive) make it weighted least squares; R² is then the weighted one.
    Weights ``1/y²`` fit relative rather than absolute errors, which suits timings whose noise grows
    with their size.  Returns ``None`` when no line is determined: fewer than two distinct x values,
    mismatched lengths, or a non-finite value or non-positive weight.  When every y is the same the
    horizontal line explains them exactly (R² = 1).  For the least-squares line R² lies in [0, 1].
    """
    if len(xs) != len(ys) or len(xs) < 2:
        return None
    xf = [float(x) for x in xs]
    yf = [float(y) for y in ys]
    wf = [1.0] * len(xf) if weights is None else [float(w) for w in weights]
    if len(wf) != len(xf) or not all(math.isfinite(v) for v in xf + yf + wf) or min(wf) <= 0.0:
        return None
    if len(set(xf)) < 2:
        return None
    total = math.fsum(wf)
    mean_x = math.fsum(w * x for w, x in zip(wf, xf, strict=True)) / total
    mean_y = math.fsum(w * y for w, y in zip(wf, yf, strict=True)) / total
    sxx = math.fsum(w * (x - mean_x) ** 2 for w, x in zip(wf, xf, strict=True))
    if not sxx > 0.0:
        return None
    sxy = math.fsum(w * (x - mean_x) * (y - mean_y) for w, x, y in zip(wf, xf, yf, strict=True))
    slope = sxy / sxx
    bias = mean_y - slope * mean_x
    ss_tot = math.fsum(w * (y - mean_y) ** 2 for w, y in zip(wf, yf, strict=True))
    ss_res = math.fsum(w * (y - (slope * x + bias)) ** 2 for w, x, y in zip(wf, xf, yf, strict=True))
    if ss_tot <= 0.0:
        r2 = 1.0
    else:
        r2 = min(1.0, max(0.0, 1.0 - ss_res / ss_tot))
    return LinearFit(slope=slope, bias=bias, r2=r2)


def evaluate(fit: Optional[LinearFit], x: float) -> Optional[float]:
    """The fitted line at ``x`` (``None`` without a fit)."""
    if fit is None:
        return None
    return fit.slope * x + fit.bias


def interpolated(points: Sequence[tuple[float, float]], x: float) -> Optional[float]:
    """``y`` at ``x`` on the polyline through ``points`` (``(x, y)`` pairs, any order, distinct x's):
    exact at a point, joined linearly between neighbours, and continued along the nearest end segment
    beyond them (when that segment rises; a flat or falling end, i.e. noise, says nothing about the
    trend).  ``None`` with fewer than two points, or beyond the ends without a rising segment.
    """
    ordered = sorted((float(px), float(py)) for px, py in points)
    if len(ordered) < 2 or len({px for px, _ in ordered}) != len(ordered):
        return None
    for (x0, y0), (x1, y1) in zip(ordered, ordered[1:]):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    (x0, y0), (x1, y1) = ordered[-2:] if x > ordered[-1][0] else ordered[:2]
    if not y1 > y0:
        return None
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def time_model(fit: Optional[LinearFit], xs: Sequence[float], ys: Sequence[float],
               tolerances: Sequence[float], drift: Optional[Drift] = None) -> str:
    """``"line"`` when ``fit`` lies within the noise of every point, else ``"points"`` (also without a fit,
    or when the inputs do not line up): a point is off the line only where the comparison rule
    (:mod:`skyline_tui.comparison.rule`) calls the difference real.

    A point's band is its ``tolerance`` (its own rounds' noise, at least the line's allowance) plus
    ``NOISE_SIGMAS`` times the ``drift`` between processes: each batch size measured in a process of its own
    carries that drift, and a point it moved is no bend in the curve.  With the drift unknown a point less
    than ``UNKNOWN_DRIFT_RATIO`` from the line may be drift alone: it does not make the points the model
    (they would follow the noise: the held-out convnet's batch 128 read 157, 122 and 137 ms in three
    profiles, and the two that chose the points predicted 96 +24 % and +16 % off, the line +4.5 %).
    ``drift=None``: the points' own noise alone, as measured in one process."""
    if fit is None or not len(xs) == len(ys) == len(tolerances):
        return "points"
    for x, y, tolerance in zip(xs, ys, tolerances, strict=True):
        predicted = evaluate(fit, x)
        if predicted is None:
            return "points"
        band = tolerance + NOISE_SIGMAS * spread(y, 0.0, drift)
        if verdict(predicted, y, band, drift, up="above", down="below") not in (SAME, UNKNOWN):
            return "points"
    return "line"


def iteration_ms_at(pred: Predictions, batch_size: int) -> Optional[float]:
    """Predicted iteration time at ``batch_size`` by the report's ``time_model`` (see the module docstring):
    the fitted line, or the measured points (the line where they say nothing); ``None`` without either, or
    if not positive."""
    if batch_size < 1:
        return None
    ms = None
    if pred.time_model == "points":
        ms = interpolated([(s.batch_size, s.iteration_ms) for s in pred.samples if s.iteration_ms > 0.0],
                          batch_size)
    if ms is None:
        ms = evaluate(pred.run_time_ms, batch_size)
    if ms is None or not ms > 0.0:
        return None
    return ms


def peak_bytes_at(pred: Predictions, batch_size: int) -> Optional[int]:
    """Predicted peak memory at ``batch_size`` in bytes (never below zero)."""
    if batch_size < 1:
        return None
    value = evaluate(pred.peak_memory_bytes, batch_size)
    if value is None:
        return None
    return max(0, int(round(value)))


MIN_R2_FOR_MAX = 0.5  # below this the line explains less than half of what was measured


def max_samples_per_second(fit: Optional[LinearFit], max_batch_size: Optional[int] = None,
                           ms_at_max: Optional[float] = None,
                           measured: Sequence[tuple[int, float]] = ()) -> Optional[float]:
    """The most throughput the time fit predicts: at ``max_batch_size`` when the largest batch that fits
    is known (on a line with a positive bias throughput grows with the batch, so that is the best one can
    run), else the limit the fit tends to as the batch grows, ``1000 / slope``.  ``ms_at_max``, when given, is
    the iteration time predicted at ``max_batch_size`` (:func:`iteration_ms_at`, which may read it off the
    measured points); without it the line's.  ``measured`` (batch, ms) pairs count too, up to
    ``max_batch_size``: on a bent curve a middle batch can beat the largest one.

    ``None`` when the fit is meaningless: a slope that is not positive (time not growing with the batch:
    noise or a too-narrow range, and an "infinite" maximum would mislead) or R² below
    :data:`MIN_R2_FOR_MAX`.
    """
    if fit is None or not fit.slope > 0.0 or not math.isfinite(fit.slope) or fit.r2 < MIN_R2_FOR_MAX:
        return None
    limit = 1000.0 / fit.slope
    if max_batch_size is not None and max_batch_size >= 1 and ms_at_max is not None and ms_at_max > 0.0:
        best = max_batch_size * 1000.0 / ms_at_max
    elif max_batch_size is None or max_batch_size < 1 or fit.bias <= 0.0:
        best = limit
    else:
        best = max_batch_size * 1000.0 / (fit.slope * max_batch_size + fit.bias)
    ran = [b * 1000.0 / ms for b, ms in measured if ms > 0.0 and (max_batch_size is None or b <= max_batch_size)]
    return max([best, *ran])


def largest_batch_that_fits(fit: Optional[LinearFit], capacity_bytes: Optional[float],
                            limit: Optional[int] = None) -> Optional[int]:
    """The largest batch ``b ≥ 1`` with ``slope·b + bias ≤ capacity_bytes``, at most ``limit``.

    Returns 0 when not even batch 1 is predicted to fit, and ``None`` when it is unknown: no fit, no
    capacity, or a memory fit that does not grow with the batch and no ``limit`` to bound it.
    """
    if fit is None or capacity_bytes is None or not math.isfinite(fit.slope) or not math.isfinite(fit.bias):
        return None
    if fit.slope <= 0.0:
        if fit.slope + fit.bias > capacity_bytes:
            return 0
        return None if limit is None else max(0, int(limit))
    exact = (capacity_bytes - fit.bias) / fit.slope
    if exact < 1.0:
        return 0
    largest = math.floor(exact + 1e-9) if exact < 1e15 else int(1e15)
    if limit is not None:
        largest = min(largest, max(0, int(limit)))
    return largest


def reserved_per_allocated(samples: Sequence[BatchSample]) -> float:
    """What the CUDA caching allocator reserved per byte it had allocated at the peak (``max_memory_reserved /
    max_memory_allocated``), at the largest sampled batch that measured both; 1.0 where none did (CPU).

    The memory line is fitted on allocated bytes, but a batch runs out of memory when what the allocator must
    *reserve* does not fit: its segments hold rounding, fragmentation and cached blocks beyond the tensors.
    The largest batch is nearest the batches the line is extrapolated to; at small ones the allocator's
    fixed rounding (2 MiB segments) weighs more.  Never below 1: reserved bytes include the allocated ones.
    """
    largest: Optional[tuple[int, int, int]] = None  # (batch, reserved, allocated)
    for sample in samples:
        if sample.reserved_peak_bytes is not None and sample.peak_bytes and (
                largest is None or sample.batch_size > largest[0]):
            largest = (sample.batch_size, sample.reserved_peak_bytes, sample.peak_bytes)
    return 1.0 if largest is None else max(1.0, largest[1] / largest[2])
