"""A timed round during which the run's own threads waited for a CPU (the app redrawing beside it, another
process) is set aside: it does not count towards two rounds agreeing, nor towards the time when the budget
runs out, unless waiting is the machine's state (rounds that waited one after another for
``WAITED_STREAK_S``).  Against real waits: a busy process pinned to the CPU this thread is pinned to, for the
first rounds only."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from typing import Iterator

import pytest
import torch

from skyline_tui.profiler import timing
from skyline_tui.profiler.timing import WAITED_STREAK_S, ContentionClock, measure_until_stable, thread_wait_ns

# Pinned beside a busy process, each test counts the waits it sees: another test's load beside it adds waits
# of its own (a whole-suite run on two xdist workers once saw all 8 rounds wait).
pytestmark = pytest.mark.alone

HAS_WAITS = thread_wait_ns() is not None
ROUND = 5  # iterations a round
SPIN_S = 0.004  # each iteration spins this long by the wall clock: its time is the same with or without waits


def test_the_wait_counter_sums_the_second_field_of_each_threads_schedstat(tmp_path):
    for tid, line in (("101", "9000 456 7\n"), ("102", "1 789 2\n")):
        (tmp_path / tid).mkdir()
        (tmp_path / tid / "schedstat").write_text(line)
    (tmp_path / "103").mkdir()  # a thread that ended between the listing and the read
    assert thread_wait_ns(str(tmp_path)) == 456 + 789
    assert thread_wait_ns(str(tmp_path / "missing")) is None  # no /proc: nothing to say


@contextlib.contextmanager
def _pinned_beside_a_busy_process() -> Iterator[subprocess.Popen[str]]:
    """This thread and a spinning process on one CPU: each runs about half the time, and waits the rest."""
    cpu = min(os.sched_getaffinity(0))
    saved = os.sched_getaffinity(0)
    spin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nprint('spinning', flush=True)\nwhile True:\n    pass\n"
    busy = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout is not None and busy.stdout.readline().strip() == "spinning"
        os.sched_setaffinity(0, {cpu})  # this thread only (pid 0: the calling thread)
        yield busy
    finally:
        os.sched_setaffinity(0, saved)
        busy.kill()
        busy.wait()


def _measure(busy: subprocess.Popen[str], busy_rounds: int, tolerance: float, max_rounds: int,
             budget_s: float = 5.0):
    """Rounds of wall-clock spins; the busy process is killed at the end of round ``busy_rounds``."""
    calls = []

    def iteration() -> None:
        until = time.perf_counter() + SPIN_S
        while time.perf_counter() < until:
            pass
        calls.append(1)
        if len(calls) == busy_rounds * ROUND:
            busy.kill()
            busy.wait()

    return measure_until_stable(iteration, torch.device("cpu"), round_iterations=ROUND, min_rounds=2,
                                tolerance=tolerance, budget_s=budget_s, max_rounds=max_rounds)


@pytest.mark.skipif(not HAS_WAITS or not hasattr(os, "sched_setaffinity"), reason="no per-thread schedstat")
def test_rounds_that_waited_for_a_cpu_do_not_pair():
    # Rounds 1 and 2 wait (about half their time), the next ones not (unless the machine adds a wait of its
    # own: then one more round).  Every round's mean is the same spin, so without the rule rounds 1 and 2
    # would agree and end the measurement after 2 rounds.
    with _pinned_beside_a_busy_process() as busy:
        result = _measure(busy, busy_rounds=2, tolerance=0.5, max_rounds=8)
    assert result.stable, result
    assert result.rounds_waited >= 2, result
    assert result.iterations_run >= 4 * ROUND, result
    assert len(result.samples_ms) == 2 * ROUND  # the pair that agreed, after the busy process went


@pytest.mark.skipif(not HAS_WAITS or not hasattr(os, "sched_setaffinity"), reason="no per-thread schedstat")
def test_when_the_budget_runs_out_the_rounds_that_waited_are_left_out():
    # Tolerance 0: no two rounds agree; the cap of 4 rounds ends it.  The first round is always dropped (it
    # waited too), and of rounds 2 to 4 the ones that waited (round 2), as long as two are left: rounds 3
    # and 4.  Before the rule, rounds 2 to 4 were kept; so they still are when the machine makes 3 or 4 wait.
    with _pinned_beside_a_busy_process() as busy:
        result = _measure(busy, busy_rounds=2, tolerance=0.0, max_rounds=4)
    assert not result.stable and result.iterations_run == 4 * ROUND, result
    assert result.rounds_waited >= 2, result
    clean = 4 - result.rounds_waited
    assert len(result.samples_ms) == (clean if clean >= 2 else 3) * ROUND, result


@pytest.mark.skipif(not HAS_WAITS or not hasattr(os, "sched_setaffinity"), reason="no per-thread schedstat")
def test_when_every_round_waits_the_rounds_pair_as_they_come():
    # Busy throughout: once rounds have waited one after another for WAITED_STREAK_S, waiting is the machine's
    # state (the report's cpu_contention names it) and the next two rounds that agree end the measurement,
    # long before the cap of 200 rounds.
    with _pinned_beside_a_busy_process() as busy:
        began = time.perf_counter()
        result = _measure(busy, busy_rounds=999, tolerance=0.5, max_rounds=200)
        elapsed = time.perf_counter() - began
    assert result.stable and result.iterations_run < 200 * ROUND, result
    assert result.rounds_waited == result.iterations_run // ROUND, result  # every round waited
    assert elapsed >= WAITED_STREAK_S, (elapsed, result)  # it waited the streak out first


@pytest.mark.skipif(not HAS_WAITS or not hasattr(os, "sched_setaffinity"), reason="no per-thread schedstat")
def test_a_burst_longer_than_a_few_rounds_is_waited_out():
    # A burst of 8 rounds (about 0.3 s: an iteration spinning 4 ms by the wall clock takes about 8 beside the
    # busy process), under WAITED_STREAK_S: the rounds in it never pair, however alike, and the measurement
    # ends on two rounds after it.  (Three rounds in a row, the rule before, let them pair.)
    with _pinned_beside_a_busy_process() as busy:
        result = _measure(busy, busy_rounds=8, tolerance=0.5, max_rounds=40)
    assert result.stable, result
    assert result.rounds_waited >= 8 and result.iterations_run >= 10 * ROUND, result
    assert len(result.samples_ms) == 2 * ROUND, result


class BusyProcessPressure:
    """A stand-in for /proc/pressure/cpu's ``some`` total that counts only the test's own busy process: stall
    accrues at wall-clock rate while it lives (it and this thread share one CPU, so one of them is always
    waiting), and not at all once it is gone.  The real file counts every helper's and CI job's waits on the
    whole machine, which a loaded 2-core box never lets fall to zero over any two rounds."""

    def __init__(self, busy: subprocess.Popen[str]) -> None:
        self._busy, self._total_us, self._last = busy, 0.0, time.monotonic()

    def __call__(self, path: str = "") -> int:
        now = time.monotonic()
        if self._busy.poll() is None:
            self._total_us += (now - self._last) * 1e6
        self._last = now
        return int(self._total_us)


@pytest.mark.skipif(not HAS_WAITS or not hasattr(os, "sched_setaffinity"), reason="no per-thread schedstat")
def test_the_contention_share_covers_the_rounds_the_time_came_from(monkeypatch):
    # The busy process for the first 2 rounds only: over the whole measurement the machine was busy (this
    # thread and the busy process took turns on one CPU), over the rounds kept it was not.  The stall counter
    # is the busy process's alone (BusyProcessPressure: it reads the process dead at the end of round 2, so
    # only the first round carries stall), so the share of the rounds kept is known exactly: 0.
    whole = ContentionClock()
    with _pinned_beside_a_busy_process() as busy:
        monkeypatch.setattr(timing, "cpu_stall_us", BusyProcessPressure(busy))
        whole.start()
        result = _measure(busy, busy_rounds=2, tolerance=0.5, max_rounds=8)
        whole_share = whole.share()
    # Whichever rounds were kept (the two that agreed, or, when every round waited on a loaded machine and the
    # cap ended it, all but the first), none is the first: the busy process's stall is none of theirs.
    assert result.rounds_waited >= 2, result
    assert whole_share is not None and whole_share > 0.0, whole_share
    assert result.stall_share == 0.0, result
