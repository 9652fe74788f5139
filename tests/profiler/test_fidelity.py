"""Figures checked against something independent of the profiler's own clocks: work whose duration is
known from below (a sleep takes at least its argument), and counts the user's code keeps itself.

Only lower bounds on time are asserted (a sleep can overrun on a busy machine, never underrun), and ratios
between figures of the same run.
"""

from __future__ import annotations

import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.run import profile

from ..conftest import TINY_ENTRY

SLEEP_MS = 30


def sleepy(sleep_ms: float) -> str:
    """TINY_ENTRY whose iteration pauses ``sleep_ms`` after the optimizer step, in plain Python."""
    return TINY_ENTRY.replace("import torch\n", "import time\n\nimport torch\n\nCALLS = [0]\n").replace(
        "        optimizer.step()\n",
        f"        optimizer.step()\n        CALLS[0] += 1\n        time.sleep({sleep_ms / 1000})  # not torch work\n")


SLEEPY = sleepy(SLEEP_MS)
PAUSE_MS = 100  # long beside what the tiny model's rows take, even stretched by a loaded machine


def test_a_known_pause_shows_in_the_iteration_time_and_in_other_not_in_any_line(write_entry):
    entry = write_entry(sleepy(PAUSE_MS))
    # One intra-op thread: on a loaded 2-core machine a second thread that is not scheduled makes every
    # parallel op wait for it, which stretches the rows with time that is nobody's.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = profile(str(entry), None, ProfileConfig.quick(memory=False, predictions=False,
                                                               breakdown_iterations=3))
    finally:
        torch.set_num_threads(threads)
    assert report.error is None, report.error
    throughput, breakdown = report.throughput, report.breakdown
    assert throughput.iteration_ms >= PAUSE_MS
    assert 0 < throughput.samples_per_second <= 4 * 1000 / PAUSE_MS  # batch 4: at most 40 samples/s
    assert breakdown.profiled_iteration_ms >= PAUSE_MS
    # The pause is Python, not torch work: it has no row, and it lands in "other".
    pause_line = next(n for n, text in enumerate(entry.read_text().splitlines(), 1) if "time.sleep(" in text)
    assert ("entry.py", pause_line) not in {(row.file, row.line) for row in breakdown.lines}
    assert breakdown.other_ms >= PAUSE_MS * 0.9
    # No row took it either.  Against the pause as measured (in other), not an absolute bound: a loaded
    # machine stretches every row (a 15 ms bound once failed at load 11), but a row that had claimed
    # the pause would hold most of it and leave other below it.
    assert all(row.total_ms < breakdown.other_ms / 4 for row in breakdown.lines), breakdown.lines
    assert breakdown.optimizer_ms < breakdown.other_ms / 4


def test_iterations_measured_counts_only_timed_iterations(write_entry):
    import sys

    config = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, warmup_iterations=3,
                                 round_iterations=2, min_rounds=2)
    report = profile(str(write_entry(SLEEPY)), None, config)
    calls = sys.modules["__skyline_entry__"].CALLS[0]
    measured = report.throughput.iterations_measured
    # Every timed iteration really ran, after the warm-up (3) that is never reported.
    assert measured % config.round_iterations == 0 and measured >= 2 * config.round_iterations
    assert calls >= measured + config.warmup_iterations
