"""Figures checked against something independent of the profiler's own clocks: work whose duration is
known from below (a sleep takes at least its argument), and counts the user's code keeps itself.

Only lower bounds on time are asserted: a sleep can overrun on a busy machine, never underrun.
"""

from __future__ import annotations

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.run import profile

from .conftest import TINY_ENTRY

SLEEP_MS = 30
SLEEPY = TINY_ENTRY.replace("import torch\n", "import time\n\nimport torch\n\nCALLS = [0]\n").replace(
    "        optimizer.step()\n",
    f"        optimizer.step()\n        CALLS[0] += 1\n        time.sleep({SLEEP_MS / 1000})  # not torch work\n")


def test_a_known_pause_shows_in_the_iteration_time_and_in_other_not_in_any_line(write_entry):
    report = profile(str(write_entry(SLEEPY)), None, ProfileConfig.quick(memory=False, predictions=False))
    assert report.error is None, report.error
    throughput, breakdown = report.throughput, report.breakdown
    assert throughput.iteration_ms >= SLEEP_MS
    assert 0 < throughput.samples_per_second <= 4 * 1000 / SLEEP_MS  # batch 4: at most 133 samples/s
    assert breakdown.profiled_iteration_ms >= SLEEP_MS
    # The sleep is Python, not torch work: no line may claim it, so it lands in "other".
    assert breakdown.other_ms >= SLEEP_MS * 0.9
    assert all(row.total_ms < SLEEP_MS * 0.5 for row in breakdown.lines)
    assert breakdown.optimizer_ms < SLEEP_MS * 0.5


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
