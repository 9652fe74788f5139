"""Runs as the panes and the status bar tell them: fresh or previous-run sections, failed runs, the
profiler process going away, a run's elapsed time, GPU readings.  Pilot, with a fake profiler source
replaying fixture reports (tests/tui/test_app.py has the keys and panes)."""

from __future__ import annotations

import dataclasses
import re

from app_support import (
    TRANSFORMER_ENTRY,
    FakeGpu,
    describe_app,
    finished,
    load_report,
    make_app,
    partial,
    text_of,
    wait_until,
)
from skyline_tui.config import ProfileConfig
from skyline_tui.report import PHASES
from skyline_tui.tui.gpu import GpuSample
from skyline_tui.tui.views.batch import BatchControl
from skyline_tui.tui.views.breakdown import BreakdownTable
from skyline_tui.tui.views.errors import ErrorPane
from skyline_tui.tui.views.memory import MemorySummary
from skyline_tui.tui.views.source import SourceView
from skyline_tui.tui.views.status import StatusBar
from skyline_tui.tui.views.throughput import ThroughputPane
from skyline_tui.worker.protocol import RunReport, WorkerGone

MLP = load_report("mlp_cpu")
TRANSFORMER = load_report("transformer_cuda")
MLP_ERROR = load_report("mlp_error")


async def test_a_throughput_the_budget_cut_short_is_marked_not_settled():
    unsettled = MLP.replace(throughput=dataclasses.replace(MLP.throughput, stable=False))
    app, _ = make_app([(MLP, True)], [(unsettled, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        assert "not settled" not in text_of(app.query_one(ThroughputPane))
        await pilot.press("r")
        await wait_until(pilot, lambda: finished(app) and app.current_run == 2)
        assert "not settled" in text_of(app.query_one(ThroughputPane))


async def test_a_long_run_shows_how_long_it_has_taken_and_then_when_it_will_be_stopped():
    now = [100.0]
    app, _ = make_app([(partial(MLP, "throughput"), False)], config=ProfileConfig(timeout_s=300))
    app.monotonic = lambda: now[0]
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.state.run.phase == "throughput")

        def status_at(seconds: float) -> str:
            now[0] = 100.0 + seconds
            app._render_status()
            return text_of(app.query_one(StatusBar))

        step = f"2/{len(PHASES)}"  # throughput is the second of the report's phases
        assert re.search(rf"throughput {step} ·", status_at(1)) is None  # a short run stays quiet
        assert f"profiling: throughput {step} · 5 s" in status_at(5) and "of 300" not in status_at(5)
        assert f"profiling: throughput {step} · 42 s of 300" in status_at(42)


async def test_a_failed_run_shows_the_error_and_keeps_the_last_good_report():
    app, factory = make_app([(MLP, True)], [(MLP_ERROR, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("r")
        await wait_until(pilot, lambda: app.live.error is not None and app.state.run.phase is None)
        error_pane = app.query_one(ErrorPane)
        assert error_pane.display
        shown = text_of(app.query_one("#error-text"))
        assert "entry.py:20" in shown and "mat1 and mat2 shapes" in shown
        # The last good numbers stay, labelled as coming from the previous run.
        throughput = app.query_one(ThroughputPane)
        assert "3,413 samples/s" in text_of(throughput)
        assert "previous run" in throughput.border_title
        assert app.query_one(BreakdownTable).row_count == 7
        # The source pane shows the user's failing line.
        source = app.query_one(SourceView)
        assert (source.file, source.cursor, source._error_line) == ("entry.py", 20, 20)
        assert "last run failed" in text_of(app.query_one(StatusBar))


async def test_a_later_good_run_clears_the_error():
    app, _ = make_app([(MLP_ERROR, True)], [(MLP, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.live.error is not None)
        await pilot.press("r")
        await wait_until(pilot, lambda: app.live.error is None and finished(app))
        assert not app.query_one(ErrorPane).display
        assert app.query_one(SourceView)._error_line is None


async def test_partial_reports_mark_panes_fresh_or_from_the_previous_run():
    slower = MLP.replace(throughput=MLP.throughput.__class__(1000.0, 64.0, 1.0, 10))
    app, _ = make_app([(MLP, True)], [(partial(slower, "throughput"), False)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        assert "previous" not in app.query_one(BreakdownTable).border_title
        await pilot.press("r")
        await wait_until(pilot, lambda: app.live.run_of("throughput") == 2)
        assert "1,000 samples/s" in text_of(app.query_one(ThroughputPane))
        assert not app.query_one(ThroughputPane).has_class("-stale")  # its own numbers are this run's
        assert "previous run" in app.query_one(BreakdownTable).border_title
        assert app.query_one(BreakdownTable).has_class("-stale")
        assert app.state.run.phase is not None  # the run is still going


def italic_text(widget) -> str:
    """The parts of what ``widget`` shows that are in italics (how older numbers are muted)."""
    from textual.geometry import Region

    size = widget.outer_size
    lines = widget.render_lines(Region(0, 0, size.width, size.height))
    return " ".join(segment.text for line in lines for segment in line if segment.style and segment.style.italic)


async def test_predicted_rows_say_they_come_from_the_previous_run_until_the_new_fit_arrives():
    slower = MLP.replace(throughput=MLP.throughput.__class__(1000.0, 64.0, 1.0, 10))
    app, factory = make_app([(MLP, True)], [(partial(slower, "throughput", "memory"), False)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("right_square_bracket")  # a target that is predicted, not measured
        throughput, memory = app.query_one(ThroughputPane), app.query_one("#memory")
        assert (throughput.border_title, memory.border_title) == ("Throughput", "Memory")
        batch = app.query_one(BatchControl)
        assert "fits" in text_of(batch) and "fits" not in italic_text(batch)
        await pilot.press("r")
        await wait_until(pilot, lambda: app.live.run_of("memory") == 2, explain=lambda: describe_app(app))
        assert app.state.run.phase is not None  # still measuring: the predictions are run 1's
        # This run's measurements, under titles that say the fitted rows are not this run's.
        assert "1,000 samples/s" in text_of(throughput)
        assert "max (fit)" in text_of(throughput) and "at batch 128" in text_of(throughput)
        assert throughput.border_title == "Throughput · fit from previous run"
        assert "at 128" in text_of(app.query_one(MemorySummary))
        assert memory.border_title == "Memory · fit from previous run"
        assert "fits" in italic_text(batch) and "≤63,800" in italic_text(batch)  # the old verdict, muted
        await pilot.press("0")  # at the profiled size the memory pane shows only measured numbers
        assert memory.border_title == "Memory"
        assert throughput.border_title == "Throughput · fit from previous run"  # max (fit) is still old
        await pilot.press("right_square_bracket")

        factory.source.on_event(RunReport(2, slower, "predictions", True))
        await wait_until(pilot, lambda: app.live.run_of("predictions") == 2, explain=lambda: describe_app(app))
        assert (throughput.border_title, memory.border_title) == ("Throughput", "Memory")
        assert "fits" not in italic_text(batch)


async def test_a_run_that_fails_after_measuring_throughput_keeps_the_old_fit_labelled():
    slower = MLP.replace(throughput=MLP.throughput.__class__(1000.0, 64.0, 1.0, 10))
    failed = partial(slower, "throughput").replace(error=MLP_ERROR.error)
    app, _ = make_app([(MLP, True)], [(failed, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("r")
        await wait_until(pilot, lambda: app.live.error is not None and app.state.run.phase is None)
        throughput = app.query_one(ThroughputPane)
        assert "1,000 samples/s" in text_of(throughput) and "max (fit)" in text_of(throughput)
        assert throughput.border_title == "Throughput · fit from previous run"


async def test_the_worker_going_away_is_an_error_not_a_crash():
    app, factory = make_app([(MLP, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        factory.source.on_event(WorkerGone(-9, "killed by signal 9"))
        await wait_until(pilot, lambda: app.live.error is not None)
        assert app.live.error.kind == "crash"
        assert "killed by signal 9" in text_of(app.query_one("#error-text"))
        assert "3,413" in text_of(app.query_one(ThroughputPane))


async def test_an_idle_worker_going_away_is_not_called_a_failed_run():
    app, factory = make_app([(MLP, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        factory.source.on_event(WorkerGone(-9, "SIGKILL"))
        await wait_until(pilot, lambda: app.live.error is not None)
        assert "profiler process ended (SIGKILL)" in text_of(app.query_one("#error-text"))
        status = text_of(app.query_one(StatusBar))
        assert "profiler ended · r restarts it" in status and "failed" not in status, status
        await pilot.press("r")  # starts it again
        await wait_until(pilot, lambda: len(factory.source.submitted) == 2 and finished(app))
        status = text_of(app.query_one(StatusBar))
        assert "profiler ended" not in status and "failed" not in status, status


async def test_before_any_report_the_status_bar_notes_are_spaced_apart():
    for watch, on_save in ((False, "on save ✗"), (True, "on save ✓")):
        app, _ = make_app([(MLP, True)], profile_on_start=False, watch=watch)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            status = text_of(app.query_one(StatusBar))
            assert f"{on_save}  no report yet" in status, status
            assert status.rstrip().endswith("no report yet")


async def test_gpu_readings_appear_for_a_cuda_run():
    gpu = FakeGpu(GpuSample("NVIDIA A100", 87, 21 << 30, 40 << 30, 64))
    app, _ = make_app([(TRANSFORMER, True)], entry=TRANSFORMER_ENTRY, gpu=gpu)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await wait_until(pilot, lambda: app._gpu_sample.available)
        app._render_status()
        status = text_of(app.query_one(StatusBar))
        assert "GPU 87%" in status and "21.0 GiB/40.0 GiB" in status and "64°C" in status
