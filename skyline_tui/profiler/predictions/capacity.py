"""How much memory a batch may use, and what an out-of-memory error leaves to clean up: the rules the
batch-size predictions apply when they choose which batches to try and which one fits.

Never past device memory: a batch whose predicted peak needs more than ``ATTEMPT_FRACTION`` of the capacity
is never tried (on CUDA the capacity is free memory + what torch already holds); ``max_batch_size`` is the
largest batch whose fitted peak fits the capacity, less a stated headroom on CUDA (``fits_rule``); an
out-of-memory error is recorded as ``oom_batch_size`` and the sampler bisects the gap between the largest
batch that ran and the one that failed while its budget lasts (``max_batch_size`` is then the largest batch
that ran: the fit was proven wrong near the failing one)."""

from __future__ import annotations

import gc
from typing import Optional

import torch

from skyline_tui.predictions.fits import evaluate, fit_linear, largest_batch_that_fits
from skyline_tui.profiler.errors import ProfileError, is_oom
from skyline_tui.profiler.memory import memory_capacity
from skyline_tui.profiler.workload import Workload
from skyline_tui.report import LinearFit, Report

# Batches are attempted only when predicted to need at most this share of the capacity: the peak counts
# tensors, not the CUDA context or fragmentation, and on CPU running out means the kernel's OOM killer.
ATTEMPT_FRACTION = 0.9
# The share of CUDA capacity max_batch_size keeps free: the fitted peak is max_memory_allocated, which
# leaves out the caching allocator's fragmentation and cached blocks (reserved minus allocated).  CPU
# peaks are the allocator's own events against system RAM: no headroom.
CUDA_HEADROOM = 0.10


def capacity_for(work: Workload, report: Report) -> tuple[Optional[int], str]:
    """On CUDA what this process can get now (free + torch's reserve); elsewhere the report's device."""
    if work.device.type == "cuda":
        return memory_capacity(work.device)
    capacity = report.device.memory_capacity_bytes if report.device is not None else None
    return capacity, "system RAM"


def fits_rule(headroom: float, capacity_source: str) -> str:
    share = f"{100 * (1 - headroom):g} % of " if headroom else ""
    kept = (f" ({100 * headroom:g} % kept free for the caching allocator's fragmentation and cached blocks, "
            "which max_memory_allocated leaves out)" if headroom else "")
    return (f"the largest batch whose fitted peak is at most {share}the capacity: {capacity_source}{kept}; "
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


def predicted_peak(points: list[tuple[int, int]], batch: int) -> Optional[float]:
    """The peak bytes at ``batch`` from measured ``(batch, peak)`` points: their line, or with one point (or a
    flat fit) memory in proportion to the batch, which over-estimates whenever part of the memory (weights)
    does not grow, i.e. errs on the safe side."""
    fit = fit_linear([b for b, _ in points], [p for _, p in points])
    if fit is not None and fit.slope > 0:
        return evaluate(fit, batch)
    if points:
        b, peak = max(points)
        return peak * batch / b if batch > b else float(peak)
    return None


def max_batch_size(ran: list[int], oom: Optional[int], capacity: Optional[int], headroom: float,
                   memory_fit: Optional[LinearFit]) -> Optional[int]:
    """The largest batch that fits: below an out-of-memory error, the largest that ran (the fit said the
    failing batch would fit, so between them it was proven wrong and only a measurement is trusted); else
    the largest whose fitted peak fits the capacity less ``headroom``, and never below a batch that ran."""
    if oom is not None:
        below = [b for b in ran if b < oom]
        return max(below) if below else None
    usable = None if capacity is None else capacity * (1.0 - headroom)
    predicted = largest_batch_that_fits(memory_fit, usable)
    return max(predicted, max(ran)) if predicted is not None and ran else predicted
