"""Timing training iterations correctly on CPU and CUDA.

On CUDA, kernels run asynchronously: host clocks measure launch time, not work.  Each iteration is
bracketed by CUDA events on the current stream and read after one synchronisation per round.  On CPU the
work is synchronous and ``perf_counter_ns`` is the right clock.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from skyline_tui.profiler.faults import FaultCounter


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_iterations(run: Callable[[], Any], device: torch.device, count: int) -> list[float]:
    """Run ``count`` iterations back to back; return each one's duration in ms."""
    if device.type == "cuda":
        with torch.cuda.device(device):
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(count)]
            torch.cuda.synchronize(device)
            for start, end in events:
                start.record()
                run()
                end.record()
            torch.cuda.synchronize(device)
            return [start.elapsed_time(end) for start, end in events]
    out = []
    for _ in range(count):
        t0 = time.perf_counter_ns()
        run()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


PRESSURE_FILE = "/proc/pressure/cpu"


def cpu_stall_us(path: str = PRESSURE_FILE) -> Optional[int]:
    """Microseconds (since boot) during which some runnable task waited for a CPU: the ``total`` of the
    ``some`` line of Linux's pressure stall information; ``None`` where the kernel has none."""
    try:
        with open(path, encoding="ascii") as pressure:
            for line in pressure:
                if line.startswith("some "):
                    fields = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
                    return int(fields["total"])
    except (OSError, KeyError, ValueError):
        return None
    return None


class ContentionClock:
    """The share of wall time, from ``start()`` to ``share()``, during which some task waited for a CPU."""

    def __init__(self, path: str = PRESSURE_FILE) -> None:
        self._path = path
        self._stall: Optional[int] = None
        self._wall = 0.0

    def start(self) -> None:
        self._stall, self._wall = cpu_stall_us(self._path), time.monotonic()

    def share(self) -> Optional[float]:
        stall, wall = cpu_stall_us(self._path), time.monotonic()
        if self._stall is None or stall is None or wall <= self._wall:
            return None
        return min(1.0, max(0.0, (stall - self._stall) / 1e6 / (wall - self._wall)))


@dataclass(frozen=True)
class TimingResult:
    mean_ms: float
    stdev_ms: float
    samples_ms: tuple[float, ...]
    stable: bool  # two consecutive round means agreed within the tolerance
    iterations_run: int = 0  # every iteration timed, kept or not (the rounds' window: its faults, its stalls)
    faults: Optional[int] = None  # minor page faults over those iterations (None where the OS does not say)


def warm_up(run: Callable[[], Any], device: torch.device, iterations: int, min_seconds: float) -> None:
    """At least ``iterations`` iterations, and keep going until ``min_seconds`` have passed."""
    deadline = time.monotonic() + min_seconds
    done = 0
    while done < iterations or time.monotonic() < deadline:
        run()
        done += 1
    synchronize(device)


def measure_until_stable(run: Callable[[], Any], device: torch.device, *, round_iterations: int,
                         min_rounds: int, tolerance: float, budget_s: float,
                         on_unsettled: Optional[Callable[[TimingResult], None]] = None,
                         max_rounds: Optional[int] = None) -> TimingResult:
    """Time rounds of iterations until two consecutive round means agree, or the budget is spent.

    At least ``min_rounds`` rounds always run, so a result has a spread even on a slow model.
    ``on_unsettled(result)`` is called once, when those rounds are in but do not agree yet: a number to
    show now (``stable`` false), while the search goes on.  ``max_rounds`` caps the rounds whatever the
    budget says (a budget estimated from a prediction can be generous on a machine that slowed down).
    """
    deadline = time.monotonic() + budget_s
    faults = FaultCounter()
    faults.start()
    samples: list[float] = []
    means: list[float] = []
    stable = False
    while True:
        round_ms = time_iterations(run, device, max(1, round_iterations))
        samples.extend(round_ms)
        means.append(statistics.fmean(round_ms))
        if len(means) >= max(2, min_rounds):
            previous, latest = means[-2], means[-1]
            if abs(latest - previous) <= tolerance * max(previous, latest, 1e-9):
                stable = True
                break
        if len(means) >= min_rounds and (time.monotonic() >= deadline or
                                         (max_rounds is not None and len(means) >= max_rounds)):
            break
        if on_unsettled is not None and len(means) >= max(2, min_rounds):
            on_unsettled(summarize(samples, False))
            on_unsettled = None
    # Report the rounds that agreed; when the budget ran out first, drop the first round (still warming).
    per_round = max(1, round_iterations)
    if stable:
        kept = samples[-2 * per_round:]
    elif len(means) > 2:
        kept = samples[per_round:]
    else:
        kept = samples
    return dataclasses.replace(summarize(kept, stable), iterations_run=len(samples), faults=faults.count())


def summarize(samples_ms: Sequence[float], stable: bool = True) -> TimingResult:
    mean = statistics.fmean(samples_ms)
    stdev = statistics.stdev(samples_ms) if len(samples_ms) > 1 else 0.0
    if not math.isfinite(stdev):
        stdev = 0.0
    return TimingResult(mean_ms=mean, stdev_ms=stdev, samples_ms=tuple(samples_ms), stable=stable)


def standard_error(stdev_ms: float, count: int) -> float:
    """How well the mean of ``count`` samples of spread ``stdev_ms`` is known (0 without samples)."""
    return stdev_ms / count ** 0.5 if count > 0 else 0.0
