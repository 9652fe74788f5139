"""How much memory a batch may use, and what an out-of-memory error leaves to clean up: the rules the
batch-size predictions apply when they choose which batches to try and which one fits.

Never past device memory: a batch whose predicted peak needs more than ``ATTEMPT_FRACTION`` of the capacity
is never tried (on CUDA the capacity is free memory + what torch already holds); ``max_batch_size`` is the
largest batch whose fitted peak fits the capacity, less a stated headroom on CUDA (``fits_rule``), where on
CUDA the fitted (allocated) peak is scaled by what the caching allocator reserved per allocated byte at the
largest sampled batch (``skyline_tui.predictions.fits.reserved_per_allocated``); an
out-of-memory error is recorded as ``oom_batch_size`` and the sampler bisects the gap between the largest
batch that ran and the one that failed while its budget lasts (``max_batch_size`` is then the largest batch
that ran: the fit was proven wrong near the failing one)."""

from __future__ import annotations

import gc
from typing import Optional

import torch

from skyline_tui.predictions.fits import evaluate, fit_linear, largest_batch_that_fits, reserved_per_allocated
from skyline_tui.profiler.errors import ProfileError, is_oom
from skyline_tui.profiler.memory import memory_capacity
from skyline_tui.profiler.workload import Workload
from skyline_tui.report import BatchSample, LinearFit, Report

# Batches are attempted only when predicted to need at most this share of the capacity: the peak counts
# tensors, not the CUDA context or fragmentation, and on CPU running out means the kernel's OOM killer.
ATTEMPT_FRACTION = 0.9
# The share of CUDA capacity max_batch_size keeps free, on top of the reserved/allocated ratio measured at the
# sampled batches: what that ratio cannot see a hundredfold beyond them (one contiguous segment for the
# largest tensor, the line's own extrapolation).  On an H200 the lstm, sampled up to 256, ran up to 24,379-
# 24,798; the headroom alone (on allocated bytes) predicted 26,902, and its reserved peak was about 10 %
# above allocated.  Worked from those figures (a ratio of 1.10, the line's bias neglected; not re-measured):
# the ratio alone would allow about 27,170, both together about 24,460.  CPU peaks are the allocator's own
# events against system RAM: no ratio, no headroom.
CUDA_HEADROOM = 0.10


def capacity_for(work: Workload, report: Report) -> tuple[Optional[int], str]:
    """On CUDA what this process can get now (free + torch's reserve); elsewhere the report's device."""
    if work.device.type == "cuda":
        return memory_capacity(work.device)
    capacity = report.device.memory_capacity_bytes if report.device is not None else None
    return capacity, "system RAM"


def fits_rule(headroom: float, capacity_source: str, reserved_ratio: float = 1.0) -> str:
    share = f"{100 * (1 - headroom):g} % of " if headroom else ""
    scaled = (f", times {reserved_ratio:.3f} (what the caching allocator reserved per allocated byte at the "
              "largest sampled batch: max_memory_reserved / max_memory_allocated)," if reserved_ratio != 1.0 else "")
    kept = (f" ({100 * headroom:g} % kept free for what the allocator's fragmentation and cached blocks "
            "come to beyond the sampled batches)" if headroom else "")
    return (f"the largest batch whose fitted peak{scaled} is at most {share}the capacity: {capacity_source}{kept}; "
            "after an out-of-memory error, the largest batch that ran below it")


def is_oom_error(exc: BaseException) -> bool:
    if isinstance(exc, ProfileError):
        return exc.info.kind == "oom"
    return is_oom(exc)


def release_after_oom(exc: BaseException, device: torch.device) -> None:
    """Drop what a failed iteration still holds (tracebacks keep its frames and tensors alive)."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        nxt = current.__cause__ or current.__context__
        current.__traceback__ = None
        current.__cause__ = None
        current.__context__ = None
        current = nxt
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def predicted_peak(samples: list[BatchSample], batch: int) -> Optional[float]:
    """The bytes the allocator is predicted to reserve at ``batch``: the line through the samples' measured
    (allocated) peaks, or with one point (or a flat fit) memory in proportion to the batch, which over-estimates
    whenever part of the memory (weights) does not grow, i.e. errs on the safe side; times what the allocator
    reserved per allocated byte (``reserved_per_allocated``: 1 on CPU)."""
    points = sorted((s.batch_size, s.peak_bytes) for s in samples if s.peak_bytes is not None)
    ratio = reserved_per_allocated(samples)
    fit = fit_linear([b for b, _ in points], [p for _, p in points])
    if fit is not None and fit.slope > 0:
        return ratio * (evaluate(fit, batch) or 0.0)
    if points:
        b, peak = points[-1]
        return ratio * (peak * batch / b if batch > b else float(peak))
    return None


def max_batch_size(ran: list[int], oom: Optional[int], capacity: Optional[int], headroom: float,
                   memory_fit: Optional[LinearFit], reserved_ratio: float = 1.0) -> Optional[int]:
    """The largest batch that fits: below an out-of-memory error, the largest that ran (the fit said the
    failing batch would fit, so between them it was proven wrong and only a measurement is trusted); else
    the largest whose fitted peak times ``reserved_ratio`` (what the allocator reserves per allocated byte)
    fits the capacity less ``headroom``, and never below a batch that ran."""
    if oom is not None:
        below = [b for b in ran if b < oom]
        return max(below) if below else None
    usable = None if capacity is None else capacity * (1.0 - headroom) / max(1.0, reserved_ratio)
    predicted = largest_batch_that_fits(memory_fit, usable)
    return max(predicted, max(ran)) if predicted is not None and ran else predicted
