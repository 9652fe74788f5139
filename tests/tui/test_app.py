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
    finished,
    fixed_clock,
    load_report,
    make_app,
    marked_keys,
    partial,
    text_of,
    wait_until,
)
from skyline_tui.tui.app import LogsWaiting, SkylineApp
from skyline_tui.tui.profile_on_save import FilesSaved
from skyline_tui.report import ErrorInfo
from skyline_tui.tui.views.batch import BatchControl
from skyline_tui.tui.views.breakdown import BreakdownTable
from skyline_tui.tui.views.errors import ErrorPane
from skyline_tui.tui.views.help import HelpScreen
from skyline_tui.tui.views.log import LogPane
from skyline_tui.tui.views.memory import ActivationTable, MemorySummary
from skyline_tui.tui.views.messages import JumpToSource
from skyline_tui.tui.views.source import SourceView
from skyline_tui.tui.views.status import StatusBar
from skyline_tui.tui.views.throughput import ThroughputPane
from skyline_tui.worker.protocol import RunLog

MLP = load_report("mlp_cpu")
TRANSFORMER = load_report("transformer_cuda")
MLP_ERROR = load_report("mlp_error")


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
    hook = lambda m: jumps.append(m) if isinstance(m, JumpToSource) else None  # noqa: E731
    async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
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
        assert marked_keys(app.query_one(BreakdownTable)) == ["line:entry.py:19"]
        assert marked_keys(app.query_one(ActivationTable)) != []
        await pilot.press("k")  # line 18: a def line that launches no work
        await wait_until(pilot, lambda: source.cursor == 18)
        assert marked_keys(app.query_one(BreakdownTable)) == []


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
        # mlp_cpu.json fits time(b) = 0.2694 ms * b + 1.52 ms: at 128, 36.0032 ms and 128000 / 36.0032
        # = 3,555 samples/s (worked out by hand, not by the code under test).
        shown = text_of(app.query_one(ThroughputPane))
        assert "at batch 128" in shown
        assert "3,555" in shown and "36.0 ms" in shown
        await pilot.press("plus", "plus", "minus")
        assert app.target_batch_size == 144  # steps of 128 / 8 = 16: 144, 160, back to 144
        assert "3,572" in text_of(app.query_one(ThroughputPane))  # 144000 / (0.2694 * 144 + 1.52)
        await pilot.press("left_square_bracket")
        assert app.target_batch_size == 72
        await pilot.press("0")
        assert app.target_batch_size is None
        assert len(factory.source.submitted) == 1  # no re-profile for any of it


async def test_equals_and_underscore_move_the_batch_like_plus_and_minus():
    # The unshifted keys of + and - on a US keyboard, so nobody has to reach for shift.
    app, _ = make_app([(MLP, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("equals_sign")
        assert app.target_batch_size == 72  # 64 + 64 / 8
        await pilot.press("underscore", "underscore")
        assert app.target_batch_size == 60  # back to 64, then 64 - 32 / 8 (below 64 the step is an eighth of 32)


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


async def test_user_output_reaches_the_log_pane_in_coalesced_batches():
    app, factory = make_app([(MLP, True)])
    posted = []
    hook = lambda m: posted.append(m) if isinstance(m, LogsWaiting) else None  # noqa: E731
    async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
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


async def test_m_toggles_between_lines_and_the_module_tree():
    app, _ = make_app([(TRANSFORMER, True)], entry=TRANSFORMER_ENTRY)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        table = app.query_one(BreakdownTable)
        assert "per line" in table.border_title
        await pilot.press("m")
        assert "per module" in table.border_title
        # The model first; blocks (111.1 ms with its children in transformer_cuda.json, none of its own).
        assert row_keys(table)[:2] == ["module:", "module:blocks"]
        # The rows are in at once; their rendering follows the table's next layout (columns sized to them).
        await wait_until(pilot, lambda: "111 ms" in text_of(table))
        assert "0.00 ms" in text_of(table)
        await pilot.press("m")
        assert row_keys(table)[0] == "line:model.py:38"  # 14.2 + 29.1 ms, the costliest line


def row_keys(table) -> list:
    return [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]


async def test_the_module_tree_opens_and_closes_with_the_keys_and_a_leaf_jumps_to_its_code():
    app, _ = make_app([(TRANSFORMER, True)], entry=TRANSFORMER_ENTRY)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        table = app.query_one(BreakdownTable)
        table.focus()
        await pilot.press("m")
        # 11 rows fit at 100x30: the model, blocks and the blocks are open, each block's insides closed.
        assert row_keys(table)[:4] == ["module:", "module:blocks", "module:blocks.1", "module:blocks.0"]
        await pilot.press("j", "j")  # blocks.1
        await pilot.press("right")
        assert row_keys(table)[3:5] == ["module:blocks.1.attn", "module:blocks.1.fc1"]
        await pilot.press("left")
        assert "module:blocks.1.attn" not in row_keys(table)
        await pilot.press("enter")  # enter on a node opens it (it does not jump)
        assert "module:blocks.1.attn" in row_keys(table)
        assert app.query_one(SourceView).file == "entry.py"
        await pilot.press("space")
        assert "module:blocks.1.attn" not in row_keys(table)
        await pilot.press("left")  # on a closed node: up to its parent
        assert row_keys(table)[table.cursor_row] == "module:blocks"
        await pilot.press("left")  # close blocks: 4 modules and the 2 other rows are left
        assert len(row_keys(table)) == 7
        await pilot.press("j", "enter")  # head, a leaf: its line (model.py:55) in the source pane
        source = app.query_one(SourceView)
        await wait_until(pilot, lambda: (source.file, source.cursor) == ("model.py", 55))


# The keys the README names (its "Keys:" line; h, the history, has tests of its own) and shift+tab: every one
# must be on the help screen.  (The design card that first listed them lives outside this repository.)
DOCUMENTED_KEYS = ("tab", "shift+tab", "j", "k", "enter", "m", "+", "-", "[", "]", "0", "w", "r", "s", "l", "e",
                   "?", "q", "space", "←", "→")


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
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0
    assert factory.source.closed


async def test_e_jumps_to_the_line_of_the_error():
    app, _ = make_app([(MLP, True)], [(MLP_ERROR, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("r")
        await wait_until(pilot, lambda: app.live.error is not None and app.state.run.phase is None)
        source = app.query_one(SourceView)
        source.focus()
        await pilot.press("g")  # the user reads elsewhere: the top of the file
        await wait_until(pilot, lambda: source.cursor == 1)
        await pilot.press("e")  # mlp_error.json: entry.py line 20
        await wait_until(pilot, lambda: source.cursor == 20)
        assert (source.file, source._error_line) == ("entry.py", 20)


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
        assert app.state.saves_seen == 1
        await pilot.press("s")
        app.post_message(FilesSaved([str(entry)]))
        await pilot.pause()
        assert app.state.saves_seen == 1 and app.state.run.phase is None  # not even queued
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
        await wait_until(pilot, lambda: app.live.error is not None and app.state.run.phase is None)
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


async def test_the_max_says_what_it_was_read_from():
    # The line's R² while the line is the model (mlp_cpu.json: 0.998); "piecewise" (the measured points
    # joined) when the curve bent away from every line, where an R² would describe a line nobody used.
    for model, words in (("line", "R² 0.998"), ("points", "piecewise")):
        report = MLP.replace(predictions=dataclasses.replace(MLP.predictions, time_model=model))
        app, _ = make_app([(report, True)])
        async with app.run_test(size=(80, 24)) as pilot:  # whole at 80 columns, not cut to "· piece…"
            await wait_until(pilot, lambda app=app: finished(app))
            shown = text_of(app.query_one(ThroughputPane))
        assert words in shown, (model, shown)
        assert ("R²" in shown) is (model == "line"), (model, shown)
