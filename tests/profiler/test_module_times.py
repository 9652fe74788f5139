"""Per-module run time against modules whose cost is known without measuring: each spins a fixed CPU time.

The fixture (tests/fixtures/breakdown/sleepy_modules) nests two spinning modules in a container beside a
third, so every inclusive and self time, forward and backward, is known by hand.  The breakdown is timed on
the thread's CPU clock, the clock the spins count on, so each time is its spin give or take the instruments'
own work, on a quiet or a loaded machine alike (a sleep on the wall clock oversleeps by whatever the machine
adds: the old upper bound of 1.5x a sleep could not hold there).  The bounds are tighter than the smallest
gap between two known times (5 ms), so a time charged to the wrong module cannot pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.breakdown import measure_breakdown
from skyline_tui.profiler.entry import load_entry_point
from skyline_tui.profiler.run import load_workload
from skyline_tui.report import Breakdown, ModuleTiming, to_dict

from ..conftest import breakdown_on_cpu_clock

ENTRY = Path(__file__).parent.parent / "fixtures" / "breakdown" / "sleepy_modules" / "entry.py"

# path: (inclusive forward, inclusive backward, self forward, self backward), in ms, from the fixture's sleeps.
KNOWN_MS = {
    "": (70, 35, 0, 0),
    "block": (30, 15, 0, 0),
    "block.short": (10, 5, 10, 5),
    "block.long": (20, 10, 20, 10),
    "tail": (40, 20, 40, 20),
}
SLACK_MS = 2.0  # the instruments' and a container's own CPU work (the modules' calls), per time


@pytest.fixture(scope="module")
def breakdown() -> Breakdown:
    entry = load_entry_point(ENTRY)
    work = load_workload(entry, entry.default_batch_size)
    with breakdown_on_cpu_clock():
        return measure_breakdown(work, ProfileConfig.quick(breakdown_iterations=2))


def within(measured: float, known: float) -> bool:
    """The spin, less timer granularity, plus at most the instruments' own work."""
    return known - 0.5 <= measured <= known + SLACK_MS


def test_each_module_carries_its_known_inclusive_and_self_times(breakdown: Breakdown) -> None:
    modules: dict[str, ModuleTiming] = {m.path: m for m in breakdown.modules}
    assert sorted(modules) == sorted(KNOWN_MS)
    for path, known in KNOWN_MS.items():
        m = modules[path]
        measured = (m.forward_ms, m.backward_ms, m.self_forward_ms, m.self_backward_ms)
        ok = all(within(value, expected) for value, expected in zip(measured, known, strict=True))
        assert ok, (path, measured, known)


def test_the_json_report_carries_inclusive_and_self_times(breakdown: Breakdown) -> None:
    # What --json writes for the breakdown section (Report.to_json dumps to_dict of each section).
    rows = {row["path"]: row for row in json.loads(json.dumps(to_dict(breakdown)))["modules"]}
    block = rows["block"]
    assert {"forward_ms", "backward_ms", "self_forward_ms", "self_backward_ms"} <= set(block)
    assert block["self_forward_ms"] < SLACK_MS and within(block["forward_ms"], 30)
