"""At 80x24, a terminal over SSH as it opens: the panes' numbers are whole, not cut off at the right edge."""

from __future__ import annotations

import dataclasses

from app_support import MLP_ENTRY, finished, load_report, make_app, text_of, wait_until
from skyline_tui.tui.views.breakdown import BreakdownTable
from skyline_tui.tui.views.throughput import ThroughputPane

MLP = load_report("mlp_cpu")


async def test_the_costliest_line_shows_its_time_and_share_at_80_columns():
    app, _ = make_app([(MLP, True)], entry=MLP_ENTRY)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        table = app.query_one(BreakdownTable)
        # mlp_cpu.json: entry.py:20 is 4.1 + 7.9 = 12.0 ms of a 21.4 ms profiled iteration, 56 %.
        await wait_until(pilot, lambda: "12.0 ms" in text_of(table))
        row = next(line for line in text_of(table).splitlines() if "entry.py:20" in line)
        assert row.split()[1:4] == ["12.0", "ms", "56"], row
        await pilot.press("m")  # the module tree keeps its two times and the share in view as well
        await wait_until(pilot, lambda: "per module" in table.border_title and "%" in text_of(table))
        header = text_of(table).splitlines()[1]  # under the title rule
        assert header.split()[:4] == ["module", "total", "self", "%"], header


async def test_a_busy_cpu_and_page_faults_each_get_a_whole_row_at_80_columns():
    busy = MLP.replace(throughput=dataclasses.replace(MLP.throughput, cpu_contention=0.81,
                                                      page_faults_per_iteration=5000.0, page_fault_ms=9.5))
    app, _ = make_app([(busy, True)], entry=MLP_ENTRY)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        shown = text_of(app.query_one(ThroughputPane))
    assert "caution     busy CPU 81%" in shown and "caution     page faults ≈ 9.50 ms of it" in shown, shown
    assert "…" not in shown, shown


async def test_a_predictions_point_that_spent_its_time_faulting_is_named_with_its_share():
    largest = max(MLP.predictions.samples, key=lambda s: s.batch_size)
    faulted = dataclasses.replace(largest, page_faults_per_iteration=20000.0, page_fault_ms=0.45 * largest.iteration_ms)
    samples = tuple(faulted if s is largest else s for s in MLP.predictions.samples)
    for points, expected in ((samples, True), (MLP.predictions.samples, False)):
        report = MLP.replace(predictions=dataclasses.replace(MLP.predictions, samples=points))
        app, _ = make_app([(report, True)], entry=MLP_ENTRY)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda app=app: finished(app))
            shown = text_of(app.query_one(ThroughputPane))
        assert (f"caution     page faults 45% at batch {largest.batch_size:,}" in shown) is expected, shown
