"""The app driven by keys through Pilot, with a fake profiler source replaying fixture reports."""

from __future__ import annotations

import dataclasses
import re
import shutil


from app_support import (
    MLP_ENTRY,
    TRANSFORMER_ENTRY,
    FakeGpu,
    FakeSourceFactory,
    describe_app,
    fixed_clock,
    load_report,
    partial,
    text_of,
    wait_until,
)
from skyline_tui.app import LogsWaiting, SkylineApp
from skyline_tui.config import ProfileConfig
from skyline_tui.gpu import GpuSample
from skyline_tui.profile_on_save import FilesSaved
from skyline_tui.report import ErrorInfo
from skyline_tui.targets import target_prediction
from skyline_tui.views import format as fmt
from skyline_tui.views.batch import BatchControl
from skyline_tui.views.breakdown import BreakdownTable
from skyline_tui.views.errors import ErrorPane
from skyline_tui.views.help import HelpScreen
from skyline_tui.views.log import LogPane
from skyline_tui.views.memory import ActivationTable, MemorySummary
from skyline_tui.views.messages import JumpToSource
from skyline_tui.views.source import SourceView
from skyline_tui.views.status import StatusBar
from skyline_tui.views.throughput import ThroughputPane
from skyline_tui.worker.protocol import RunLog, RunReport, WorkerGone

MLP = load_report("mlp_cpu")
TRANSFORMER = load_report("transformer_cuda")
MLP_ERROR = load_report("mlp_error")


def make_app(*runs, entry=MLP_ENTRY, gpu=None, **kwargs) -> tuple[SkylineApp, FakeSourceFactory]:
    factory = FakeSourceFactory(*runs)
    app = SkylineApp(str(entry), source=factory, gpu=gpu or FakeGpu(), clock=fixed_clock, **kwargs)
    return app, factory


def finished(app: SkylineApp) -> bool:
    return app.live.shown is not None and app.run_state.phase is None


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
        await wait_until(pilot, lambda: app.run_state.phase == "throughput")

        def status_at(seconds: float) -> str:
            now[0] = 100.0 + seconds
            app._render_status()
            return text_of(app.query_one(StatusBar))

        assert re.search(r"throughput 2/5 ·", status_at(1)) is None  # a short run stays quiet
        assert "profiling: throughput 2/5 · 5 s" in status_at(5) and "of 300" not in status_at(5)
        assert "profiling: throughput 2/5 · 42 s of 300" in status_at(42)


async def test_first_report_fills_every_pane():
    app, factory = make_app([(MLP, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        assert factory.source.started
        assert factory.source.submitted[0][0] == str(MLP_ENTRY)
        assert "3,413 samples/s" in text_of(app.query_one(ThroughputPane))
        assert "18.8 ms" in text_of(app.query_one(ThroughputPane))
        breakdown = app.query_one(BreakdownTable)
        assert breakdown.row_count == len(MLP.breakdown.lines) + 2  # + optimizer and other
        assert "13.9 MiB" in text_of(app.query_one(MemorySummary))
        assert app.query_one(ActivationTable).row_count == 4
        status = text_of(app.query_one(StatusBar))
        assert "CPU (2 cores)" in status and "GPU N/A" in status and "last report 10:42:07" in status
        assert not app.query_one(ErrorPane).display
    assert factory.source.closed


async def test_enter_on_a_breakdown_row_jumps_the_source_to_its_line():
    app, _ = make_app([(TRANSFORMER, True)], entry=TRANSFORMER_ENTRY)
    jumps = []
    async with app.run_test(size=(100, 30), message_hook=lambda m: jumps.append(m) if isinstance(m, JumpToSource) else None) as pilot:
        await wait_until(pilot, lambda: finished(app))
        source = app.query_one(SourceView)
        assert source.file == "entry.py"
        app.query_one(BreakdownTable).focus()
        await pilot.press("j")  # second row: model.py:19, the qkv projection
        await pilot.press("enter")
        await wait_until(pilot, lambda: source.cursor == 19)
        assert source.file == "model.py"
        assert (jumps[-1].file, jumps[-1].line) == ("model.py", 19)
        assert 19 in source._marked


async def test_moving_the_source_cursor_marks_the_rows_of_that_line():
    app, _ = make_app([(MLP, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        source = app.query_one(SourceView)
        source.focus()
        await pilot.press("g", *["j"] * 18)  # line 19: x = F.relu(self.fc1(x))
        await wait_until(pilot, lambda: source.cursor == 19)
        assert app.query_one(BreakdownTable).marked_keys == ["line:entry.py:19"]
        assert app.query_one(ActivationTable).marked_keys != []
        await pilot.press("k")  # line 18: a def line that launches no work
        await wait_until(pilot, lambda: source.cursor == 18)
        assert app.query_one(BreakdownTable).marked_keys == []


async def test_clicking_a_source_line_moves_the_cursor():
    app, _ = make_app([(MLP, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.click(SourceView, offset=(10, 5))  # row 0 is the title rule
        assert app.query_one(SourceView).cursor == 5


async def test_batch_keys_show_predictions_at_the_target_without_profiling():
    app, factory = make_app([(MLP, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("right_square_bracket")
        assert app.target_batch_size == 128
        expected = target_prediction(app.live.shown, 128)
        shown = text_of(app.query_one(ThroughputPane))
        assert "at batch 128" in shown
        assert fmt.rate(expected.samples_per_second) in shown and fmt.ms(expected.iteration_ms) in shown
        await pilot.press("plus", "plus", "minus")
        assert app.target_batch_size == 144
        await pilot.press("left_square_bracket")
        assert app.target_batch_size == 72
        await pilot.press("0")
        assert app.target_batch_size is None
        assert len(factory.source.submitted) == 1  # no re-profile for any of it


async def test_a_target_beyond_capacity_is_shown_as_not_fitting():
    app, _ = make_app([(TRANSFORMER, True)], entry=TRANSFORMER_ENTRY)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        batch = app.query_one(BatchControl)
        assert not batch.has_class("-does-not-fit")
        await pilot.press("right_square_bracket")  # 64: predicted 37 GiB of 40
        assert not batch.has_class("-does-not-fit")
        await pilot.press("right_square_bracket")  # 128: predicted 69 GiB
        assert batch.has_class("-does-not-fit")
        assert "does not fit" in text_of(app.query_one(MemorySummary))


class RecordingApp(SkylineApp):
    """Records the rewrite seam's calls instead of editing a file."""

    written: list

    def _write_batch_size(self, path, batch_size):
        self.written.append((path, batch_size))


async def test_w_writes_the_target_through_the_seam_and_reprofiles():
    factory = FakeSourceFactory([(MLP, True)])
    app = RecordingApp(str(MLP_ENTRY), source=factory, gpu=FakeGpu(), clock=fixed_clock)
    app.written = []
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("w")  # nothing to write: the target is the profiled batch size
        assert app.written == []
        await pilot.press("right_square_bracket", "w")
        assert [(p.name, b) for p, b in app.written] == [("entry.py", 128)]
        await wait_until(pilot, lambda: len(factory.source.submitted) == 2)


async def test_w_rewrites_the_default_batch_size_in_the_entry_point(tmp_path):
    entry = tmp_path / "entry.py"
    shutil.copy(MLP_ENTRY, entry)
    app, factory = make_app([(MLP, True)], entry=entry)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("right_square_bracket", "w")
        await pilot.pause()
    assert "def skyline_input_provider(batch_size=128):" in entry.read_text()
    assert len(factory.source.submitted) == 2


async def test_w_refuses_when_the_file_changed_since_it_was_profiled(tmp_path):
    entry = tmp_path / "entry.py"
    shutil.copy(MLP_ENTRY, entry)
    app, factory = make_app([(MLP, True)], entry=entry)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        edited = entry.read_text() + "# an edit made in the editor after the profile\n"
        entry.write_text(edited)
        await pilot.press("right_square_bracket", "w")
        await pilot.pause()
    assert entry.read_text() == edited  # nothing lost, nothing written
    assert len(factory.source.submitted) == 1


async def test_a_failed_run_shows_the_error_and_keeps_the_last_good_report():
    app, factory = make_app([(MLP, True)], [(MLP_ERROR, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("r")
        await wait_until(pilot, lambda: app.live.error is not None and app.run_state.phase is None)
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
        assert app.run_state.phase is not None  # the run is still going


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
        assert app.run_state.phase is not None  # still measuring: the predictions are run 1's
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
        await wait_until(pilot, lambda: app.live.error is not None and app.run_state.phase is None)
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


async def test_user_output_reaches_the_log_pane_in_coalesced_batches():
    app, factory = make_app([(MLP, True)])
    posted = []
    async with app.run_test(size=(100, 30), message_hook=lambda m: posted.append(m) if isinstance(m, LogsWaiting) else None) as pilot:
        await wait_until(pilot, lambda: finished(app))
        for i in range(500):
            factory.source.on_event(RunLog(1, "stdout" if i % 2 else "stderr", f"line {i}\n"))
        log = app.query_one(LogPane)
        await wait_until(pilot, lambda: log.line_count == 500)
        assert len(posted) < 50  # one message per batch, not per line
        assert not log.display
        await pilot.press("l")
        assert log.display
        await wait_until(pilot, lambda: len(log.lines) == 500)
        assert log.lines[-1].text == "line 499"


async def test_m_toggles_between_lines_and_modules():
    app, _ = make_app([(TRANSFORMER, True)], entry=TRANSFORMER_ENTRY)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        table = app.query_one(BreakdownTable)
        assert "per line" in table.border_title
        await pilot.press("m")
        assert "per module" in table.border_title
        first = table.coordinate_to_cell_key((0, 0)).row_key.value
        assert first.startswith("module:blocks.")


# DESIGN.md's keys, and the ones added since: every one must be on the help screen.
DOCUMENTED_KEYS = ("tab", "shift+tab", "j", "k", "enter", "m", "+", "-", "[", "]", "0", "w", "r", "s", "l", "e",
                   "?", "q")


async def test_help_lists_the_keys_and_closes():
    app, _ = make_app([(MLP, True)])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        lines = text_of(app.screen.query_one("#help-box Static")).splitlines()
        # The key column: what each line shows before the gap that starts its description.
        listed = {key for line in lines for key in re.split(r"\s{2,}", line.strip())[0].split() if key != "/"}
        assert [key for key in DOCUMENTED_KEYS if key not in listed] == [], lines
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_q_quits():
    app, factory = make_app([(MLP, True)])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert factory.source.closed


async def test_tab_moves_between_panes():
    app, _ = make_app([(MLP, True)])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        assert isinstance(app.focused, SourceView)
        await pilot.press("tab")
        assert isinstance(app.focused, BreakdownTable)
        await pilot.press("tab")
        assert isinstance(app.focused, ActivationTable)
        await pilot.press("shift+tab", "shift+tab")
        assert isinstance(app.focused, SourceView)


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


async def test_a_source_that_cannot_start_is_reported():
    class Broken:
        def __init__(self, on_event):
            pass

        def start(self):
            raise OSError("no python")

        def close(self):
            pass

    app = SkylineApp(str(MLP_ENTRY), source=Broken, gpu=FakeGpu(), clock=fixed_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.live.error is not None)
        assert "no python" in app.live.error.message
        assert app.query_one(ErrorPane).display


async def test_a_settled_save_profiles_again_unless_s_turned_that_off(tmp_path):
    entry = tmp_path / "entry.py"
    shutil.copy(MLP_ENTRY, entry)
    app, factory = make_app([(MLP, True)], entry=entry, watch=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        app.post_message(FilesSaved([str(entry)]))  # what the watcher posts once a burst of saves settles
        await wait_until(pilot, lambda: len(factory.source.submitted) == 2 and finished(app),
                         explain=lambda: describe_app(app))
        assert app.saves_seen == 1
        await pilot.press("s")
        app.post_message(FilesSaved([str(entry)]))
        await pilot.pause()
        assert app.saves_seen == 1 and app.run_state.phase is None  # not even queued
        assert len(factory.source.submitted) == 2


async def test_an_error_without_a_file_leaves_the_source_pane_where_it_was():
    timed_out = partial(TRANSFORMER).replace(error=ErrorInfo("timeout", "took too long"))
    app, _ = make_app([(TRANSFORMER, True)], [(timed_out, True)], entry=TRANSFORMER_ENTRY)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        source = app.query_one(SourceView)
        app.query_one(BreakdownTable).focus()
        await pilot.press("j", "enter")  # the user is reading model.py:19, not the entry point
        await wait_until(pilot, lambda: (source.file, source.cursor) == ("model.py", 19))
        await pilot.press("r")
        await wait_until(pilot, lambda: app.live.error is not None and app.run_state.phase is None)
        assert "took too long" in text_of(app.query_one("#error-text"))
        assert (source.file, source.cursor, source._error_line) == ("model.py", 19, None)
        await pilot.press("e")  # jump to the error's line: there is none
        assert (source.file, source.cursor, source._error_line) == ("model.py", 19, None)


async def test_clicking_a_breakdown_row_jumps_the_source_to_its_line():
    app, _ = make_app([(MLP, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        table = app.query_one(BreakdownTable)
        await pilot.click(BreakdownTable, offset=(3, 3))  # title rule, header, row 0, row 1 (entry.py:19)
        await pilot.click(BreakdownTable, offset=(3, 3))  # a click on the highlighted row selects it
        await wait_until(pilot, lambda: app.query_one(SourceView).cursor == 19)
        assert table.cursor_row == 1
