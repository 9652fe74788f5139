"""Page faults per iteration, and what they cost: the allocator's share of a CPU iteration.

glibc's malloc gives large freed blocks back to the system (``munmap``, or trimming the heap) and takes
them again on the next iteration, where every 4 KiB page is faulted in and zeroed by the kernel.  Whether a
training loop does that depends on the process's allocation history (glibc raises its thresholds after the
first large free), so one model at one batch size can run in two regimes: the bundled LSTM at batch 32 ran
10.1 ms an iteration with 3,789 minor faults each, and 5.8 ms with none once a larger batch had run in the
same process.  The throughput reports the faults its measured iterations took and an estimate of their time
(the faults times what one fault costs this process, measured on fresh pages), so such a number is named
rather than mistaken for the model's.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import time
from typing import Optional, Sequence

try:
    import resource
except ImportError:  # not on this platform (Windows): no fault counts
    resource = None  # type: ignore[assignment]

CALIBRATION_PAGES = 2048  # 8 MiB of fresh pages a round: about 3-5 ms, once a worker (before it forks)


def minor_faults() -> Optional[int]:
    """Minor page faults this process (every thread) has taken so far; None where the OS does not say."""
    if resource is None:
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


class FaultCounter:
    """Minor page faults between ``start()`` and ``count()``."""

    def __init__(self) -> None:
        self._start: Optional[int] = None

    def start(self) -> None:
        self._start = minor_faults()

    def count(self) -> Optional[int]:
        now = minor_faults()
        return None if self._start is None or now is None else max(0, now - self._start)


CALIBRATION_ROUNDS = 5  # each loop's fastest round is its time without interference


@functools.lru_cache(maxsize=None)
def fault_cost_us(pages: int = CALIBRATION_PAGES, rounds: int = CALIBRATION_ROUNDS) -> Optional[float]:
    """Microseconds one minor fault costs this process: fresh private anonymous pages written one byte each,
    less the same loop over the pages once they are mapped (the loop's own time), over ``rounds`` fresh regions
    (``cost_per_fault_us``).  None when no fault was counted (no counter, or the kernel mapped the region up
    front).  Measured once a process: the worker measures it before it forks, so no run pays it
    (worker/child.py)."""
    measured = [timing for timing in (_calibration_round(pages) for _ in range(max(1, rounds))) if timing]
    return cost_per_fault_us(measured)


def _calibration_round(pages: int) -> Optional[tuple[int, int, int]]:
    """(ns writing one byte to each of ``pages`` fresh pages, ns writing them again once mapped, faults counted)."""
    page = mmap.PAGESIZE
    try:
        region = mmap.mmap(-1, pages * page, flags=mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0))
    except (OSError, ValueError):
        return None
    with region:
        with contextlib.suppress(AttributeError, OSError):  # no such advice on this OS or kernel: small pages
            region.madvise(mmap.MADV_NOHUGEPAGE)  # small pages, as the count assumes, where huge ones are always on
        before = minor_faults()
        began = time.perf_counter_ns()
        for offset in range(0, pages * page, page):
            region[offset] = 1
        faulted = time.perf_counter_ns()
        after = minor_faults()
        for offset in range(0, pages * page, page):
            region[offset] = 2
        looped = time.perf_counter_ns()
    if before is None or after is None or after <= before:
        return None
    return faulted - began, looped - faulted, after - before


def cost_per_fault_us(rounds: Sequence[tuple[int, int, int]]) -> Optional[float]:
    """Microseconds a fault costs from calibration rounds (faulting loop ns, plain loop ns, faults): each loop's
    fastest round, as preemption only adds time.  One round alone read 3.3 us or 0 instead of 1.25 when another
    process competed for the cores (the plain loop preempted), and a run's fault time came out at 242 % of its
    iteration in the app, whose worker calibrates while the screen starts."""
    if not rounds:
        return None
    faulting_ns, faults = min((ns, count) for ns, _, count in rounds)
    plain_ns = min(ns for _, ns, _ in rounds)
    return max(0.0, faulting_ns - plain_ns) / 1000.0 / faults


def fault_time(faults: Optional[int], iterations: int) -> tuple[Optional[float], Optional[float]]:
    """``faults`` over ``iterations`` as (faults an iteration, their estimated ms an iteration); (None, None)
    without a count.  What one fault costs is measured once a process (the worker does it before it forks),
    and only asked for when there is something to cost."""
    if faults is None or iterations <= 0:
        return None, None
    per_iteration = faults / iterations
    cost_us = fault_cost_us() if per_iteration >= 1.0 else 0.0
    return per_iteration, None if cost_us is None else per_iteration * cost_us / 1000.0
