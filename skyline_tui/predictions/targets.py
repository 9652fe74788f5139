"""Predicted run time and memory at a target batch size, from a report's linear fits.

Every number the app shows for a batch size that was not measured comes from here, so the views stay
render-only.  The fitted lines are evaluated by :mod:`skyline_tui.predictions.fits` (the one place that math
lives); this module chooses between measured and predicted numbers and picks the steps the keys move by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from skyline_tui.predictions import fits as fitted
from skyline_tui.report import Report

# Far beyond any real batch; stops a held key from walking into absurd numbers.
MAX_TARGET_BATCH_SIZE = 1 << 20


@dataclass(frozen=True)
class TargetPrediction:
    batch_size: int
    measured: bool  # the target equals the profiled batch size (numbers are measured, not fitted)
    iteration_ms: Optional[float]
    samples_per_second: Optional[float]
    peak_bytes: Optional[int]
    capacity_bytes: Optional[int]
    fits: Optional[bool]  # None: unknown (no memory fit and no max batch size)
    max_batch_size: Optional[int]


def capacity_of(report: Report) -> Optional[int]:
    """Memory the run may use: what the memory phase saw, else what the device reported."""
    if report.memory is not None and report.memory.capacity_bytes:
        return report.memory.capacity_bytes
    if report.device is not None:
        return report.device.memory_capacity_bytes
    return None


def target_prediction(report: Report, batch_size: int) -> TargetPrediction:
    """What the report predicts for ``batch_size``; measured numbers where it is the profiled size."""
    predictions = report.predictions
    measured = batch_size == report.batch_size
    capacity = capacity_of(report)
    max_batch = predictions.max_batch_size if predictions is not None else None

    iteration_ms: Optional[float] = None
    if measured and report.throughput is not None:
        iteration_ms = report.throughput.iteration_ms
    elif predictions is not None:
        iteration_ms = fitted.iteration_ms_at(predictions, batch_size)  # None where the line says nothing
    samples_per_second = batch_size * 1000.0 / iteration_ms if iteration_ms else None

    peak: Optional[int] = None
    if measured and report.memory is not None:
        peak = report.memory.peak_bytes
    elif predictions is not None:
        peak = fitted.peak_bytes_at(predictions, batch_size)

    fits: Optional[bool] = None
    if predictions is not None and predictions.oom_batch_size is not None and batch_size >= predictions.oom_batch_size:
        fits = False  # it was tried and ran out of memory: no fit can argue with that
    elif peak is not None and capacity:
        # The same rule as max_batch_size: on CUDA the allocated peak times what the allocator reserved per
        # allocated byte, and a stated share of the capacity stays free.
        headroom = predictions.memory_headroom if predictions is not None else 0.0
        ratio = fitted.reserved_per_allocated(predictions.samples) if predictions is not None else 1.0
        fits = peak * ratio <= capacity * (1.0 - headroom)
    elif max_batch is not None:
        fits = batch_size <= max_batch

    return TargetPrediction(
        batch_size=batch_size,
        measured=measured,
        iteration_ms=iteration_ms,
        samples_per_second=samples_per_second,
        peak_bytes=peak,
        capacity_bytes=capacity,
        fits=fits,
        max_batch_size=max_batch,
    )


def fine_step(batch_size: int) -> int:
    """The `+`/`-` step: an eighth of the batch's power of two, so 64 moves by 8 and 1024 by 128."""
    return max(1, (1 << (max(batch_size, 1).bit_length() - 1)) // 8)


def step_batch_size(batch_size: int, direction: int, coarse: bool = False) -> int:
    """The next target batch size: `+`/`-` snap to multiples of :func:`fine_step`; `[`/`]` halve/double."""
    if coarse:
        moved = batch_size * 2 if direction > 0 else batch_size // 2
    elif direction > 0:
        step = fine_step(batch_size)
        moved = (batch_size // step + 1) * step
    else:
        step = fine_step(batch_size - 1) if batch_size > 1 else 1
        moved = (-(-batch_size // step) - 1) * step  # the multiple of step just below batch_size
    return min(MAX_TARGET_BATCH_SIZE, max(1, moved))
