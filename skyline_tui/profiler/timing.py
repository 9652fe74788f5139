"""Timing training iterations correctly on CPU and CUDA.

On CUDA, kernels run asynchronously: host clocks measure launch time, not work.  Each iteration is
bracketed by CUDA events on the current stream and read after one synchronisation per round.  On CPU the
work is synchronous and ``perf_counter_ns`` is the right clock.
"""

from __future__ import annotations

import dataclasses
import math
import os
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


TASKS_DIR = "/proc/self/task"


def thread_wait_ns(tasks_dir: str = TASKS_DIR) -> Optional[int]:
    """Nanoseconds this process's threads have spent runnable but waiting for a CPU (the second field of each
    thread's ``schedstat``), summed; ``None`` where the kernel does not say.  A thread that ended takes its
    wait with it: only a difference over a stretch in which the same threads live means anything."""
    try:
        tids = os.listdir(tasks_dir)
    except OSError:
        return None
    total, read = 0, False
    for tid in tids:
        try:
            with open(os.path.join(tasks_dir, tid, "schedstat"), encoding="ascii") as stat:
                total += int(stat.read().split()[1])
            read = True
        except (OSError, IndexError, ValueError):  # the thread ended meanwhile, or no such field
            continue
    return total if read else None


# A round during which the run's threads waited for a CPU for more than this share of its wall time (summed
# over the threads), and at least WAITED_MIN_MS, met something else on the machine: on 2 cores, the app
# redrawing after the first number (in 9 of 16 app runs of the convnet traced, a round soon after it waited
# 34-67 ms and read 19-32 ms an iteration, beside rounds of 7.5-10 ms that waited 0.0-0.6 ms), or redrawing
# its dimmed panes when a re-profile starts (the mlp's whole throughput phase, 120-190 ms, waited 64-104 ms
# and read 1.9-2.8 ms against 1.6-1.7 ms headless).  It does not count towards two rounds agreeing...
WAITED_ROUND_SHARE = 0.1
WAITED_MIN_MS = 1.0  # (a thread's wake-up now and then is not a burst of load)
# ...unless rounds have waited one after another for this long: then waiting is the machine's state, the
# rounds pair as they come, and ``cpu_contention`` says so.  A time, not a count of rounds: a burst of 150 ms
# spans 30 rounds of a fast model and part of one of a slow model.
WAITED_STREAK_S = 0.5


def _waited(before_ns: Optional[int], after_ns: Optional[int], wall_ms: float) -> bool:
    if before_ns is None or after_ns is None:
        return False  # not known: the round counts, as every round did before
    return (after_ns - before_ns) / 1e6 > max(WAITED_MIN_MS, WAITED_ROUND_SHARE * wall_ms)


@dataclass(frozen=True)
class TimingResult:
    mean_ms: float
    stdev_ms: float
    samples_ms: tuple[float, ...]
    stable: bool  # two consecutive round means agreed within the tolerance
    iterations_run: int = 0  # every iteration timed, kept or not (the rounds' window: its faults, its stalls)
    faults: Optional[int] = None  # minor page faults over those iterations (None where the OS does not say)
    rounds_waited: int = 0  # rounds set aside because the run's threads waited for a CPU during them
    # The share of the kept rounds' wall time during which some task on the machine waited for a CPU (Linux's
    # pressure stall information; None without it): what ``Throughput.cpu_contention`` reports.
    stall_share: Optional[float] = None


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
                         max_rounds: Optional[int] = None, earlier: Optional[TimingResult] = None) -> TimingResult:
    """Time rounds of iterations until two consecutive round means agree, or the budget is spent.

    At least ``min_rounds`` rounds always run, so a result has a spread even on a slow model.
    ``on_unsettled(result)`` is called once, after the first round: a number to show now (``stable`` false),
    while the search goes on (on a 20 ms step, 60 ms sooner than two rounds).  ``max_rounds`` caps the rounds
    whatever the budget says (a budget estimated from a prediction can be generous on a machine that slowed
    down).  A round during which the run's threads waited for a CPU does not pair (``WAITED_ROUND_SHARE``).
    ``earlier``: a round of ``round_iterations`` timed just before (one :func:`one_round`'s), the first here.
    """
    deadline = time.monotonic() + budget_s
    faults = FaultCounter()
    faults.start()
    samples: list[float] = list(earlier.samples_ms) if earlier else []
    means: list[float] = [statistics.fmean(samples)] if samples else []
    waited: list[bool] = [bool(earlier.rounds_waited)] if earlier else []  # per round: set aside (WAITED_ROUND_SHARE)
    walls: list[float] = [sum(samples)] if earlier else []  # per round: its wall time (ms)
    stalls: list[Optional[float]] = [None] if earlier else []  # per round: the machine's CPU stall (ms; cpu_stall_us)
    streak_ms = walls[0] if waited[:1] == [True] else 0.0  # wall time of the latest rounds that waited in a row
    stable = False
    wait_before, stall_before = thread_wait_ns(), cpu_stall_us()
    while True:
        began = time.perf_counter_ns()
        round_ms = time_iterations(run, device, max(1, round_iterations))
        walls.append((time.perf_counter_ns() - began) / 1e6)
        wait_after, stall_after = thread_wait_ns(), cpu_stall_us()
        stalls.append(None if stall_before is None or stall_after is None else (stall_after - stall_before) / 1e3)
        waited.append(_waited(wait_before, wait_after, walls[-1]))
        wait_before, stall_before = wait_after, stall_after  # one round's end is the next one's start
        streak_ms = streak_ms + walls[-1] if waited[-1] else 0.0
        samples.extend(round_ms)
        means.append(statistics.fmean(round_ms))
        pairable = waited[-2:] == [False, False] or (waited[-2:] == [True, True] and
                                                     streak_ms >= WAITED_STREAK_S * 1000.0)
        if len(means) >= max(2, min_rounds) and pairable:
            previous, latest = means[-2], means[-1]
            if abs(latest - previous) <= tolerance * max(previous, latest, 1e-9):
                stable = True
                break
        if len(means) >= min_rounds and (time.monotonic() >= deadline or
                                         (max_rounds is not None and len(means) >= max_rounds)):
            break
        if on_unsettled is not None:
            on_unsettled(summarize(samples, False))
            on_unsettled = None
            wait_before, stall_before = thread_wait_ns(), cpu_stall_us()  # what the callback met is no round's
    # Report the rounds that agreed; when the budget ran out first, drop the first round (still warming) and
    # the rounds that waited, as long as two are left (a time with a spread).
    per_round = max(1, round_iterations)
    numbers = list(range(len(means)))
    if stable:
        numbers = numbers[-2:]
    elif len(means) > 2:
        clean = [number for number in numbers[1:] if not waited[number]]
        numbers = clean if len(clean) >= 2 else numbers[1:]
    kept = [ms for number in numbers for ms in samples[number * per_round:(number + 1) * per_round]]
    counted = faults.count()
    if earlier is not None:
        counted = None if counted is None or earlier.faults is None else counted + earlier.faults
    return dataclasses.replace(summarize(kept, stable), iterations_run=len(samples), faults=counted,
                               rounds_waited=sum(waited),
                               stall_share=_stall_share([stalls[n] for n in numbers], [walls[n] for n in numbers]))


def _stall_share(stalls_ms: Sequence[Optional[float]], walls_ms: Sequence[float]) -> Optional[float]:
    known = [stall for stall in stalls_ms if stall is not None]
    if len(known) < len(stalls_ms) or not walls_ms or sum(walls_ms) <= 0:
        return None
    return min(1.0, max(0.0, sum(known) / sum(walls_ms)))


def summarize(samples_ms: Sequence[float], stable: bool = True) -> TimingResult:
    mean = statistics.fmean(samples_ms)
    stdev = statistics.stdev(samples_ms) if len(samples_ms) > 1 else 0.0
    if not math.isfinite(stdev):
        stdev = 0.0
    return TimingResult(mean_ms=mean, stdev_ms=stdev, samples_ms=tuple(samples_ms), stable=stable)


def standard_error(stdev_ms: float, count: int) -> float:
    """How well the mean of ``count`` samples of spread ``stdev_ms`` is known (0 without samples)."""
    return stdev_ms / count ** 0.5 if count > 0 else 0.0
