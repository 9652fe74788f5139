"""The app's history with Pilot: a finished run is recorded in a real SQLite store and compared with the
previous run of the same entry and batch size (throughput change, Δ column, new lines); `h` lists the past
runs with a sparkline, enter shows one as a past run, d diffs it against the latest, b pins it."""

from __future__ import annotations

import pytest
from app_support import MLP_ENTRY, REPO, FakeGpu, describe_app, finished, load_report, make_app, text_of, wait_until
from textual.widgets import DataTable, Sparkline

from skyline_tui.config import ProfileConfig
from skyline_tui.history import History
from skyline_tui.report import LineTiming
from skyline_tui.tui.history_sink import HistorySink
from skyline_tui.tui.state import shown_comparison
from skyline_tui.tui.views.breakdown import BreakdownTable
from skyline_tui.tui.views.history_screen import DiffScreen, HistoryScreen
from skyline_tui.tui.views.memory import MemorySummary
from skyline_tui.tui.views.throughput import ThroughputPane


def current_and_baseline():
    """The MLP fixture as this run, and by hand a slower earlier run of the same entry and batch size:
    iteration 25 ms instead of 18.75 (64 samples: 2,560/s against 3,413.3/s, +33 %); line 20 took 4 ms
    instead of 12; line 19 the same 3.9 ms; line 40 did not exist yet.  Modules: fc2 took 1 + 1 ms
    instead of 3.85 + 7.9 (+9.75 ms), the whole model the same 16.63 ms, fc3 did not exist yet."""
    current = load_report("mlp_cpu").replace(entry_point=str(MLP_ENTRY), project_root=str(MLP_ENTRY.parent))
    assert current.throughput is not None and current.breakdown is not None
    lines = {ln.line: ln for ln in current.breakdown.lines}
    # the fixture's numbers this test relies on
    assert (lines[20].total_ms, round(lines[19].total_ms, 6)) == (12.0, 3.9)
    old_lines = tuple(LineTiming(ln.file, ln.line, ln.code, 2.0, 2.0) if ln.line == 20 else ln
                      for ln in current.breakdown.lines if ln.line != 40)
    old_modules = tuple(m.__class__(**{**m.__dict__, "forward_ms": 1.0, "backward_ms": 1.0}) if m.path == "fc2" else m
                        for m in current.breakdown.modules if m.path != "fc3")
    baseline = current.replace(
        created_at="2025-01-14T09:00:00Z",
        throughput=current.throughput.__class__(samples_per_second=2560.0, iteration_ms=25.0,
                                                iteration_ms_stdev=0.62, iterations_measured=24),
        breakdown=current.breakdown.__class__(**{**current.breakdown.__dict__, "lines": old_lines,
                                                 "modules": old_modules}))
    return current, baseline


def past_run_of(app):
    past = app.state.history.past
    return past.run_id if past is not None else None


async def run_with_history(tmp_path):
    current, baseline = current_and_baseline()
    store = tmp_path / "history.db"
    with History(store) as history:
        assert history.record(baseline) == 1
    app, _factory = make_app([(current, True)], history=HistorySink(store))
    return app, store


def compared(app) -> bool:
    """The run is on screen, recorded, and its change against the baseline known."""
    return finished(app) and shown_comparison(app.state) is not None


async def test_a_finished_run_is_recorded_and_shows_its_change_against_the_previous_run(tmp_path):
    app, store = await run_with_history(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: compared(app))
        throughput = text_of(app.query_one(ThroughputPane))
        assert "▲ 33 % faster vs previous run #1" in throughput, throughput
        table = app.query_one(BreakdownTable)
        slower, same, new = (table.get_cell(f"line:entry.py:{n}", "delta") for n in (20, 19, 40))
        assert (slower.plain, same.plain, new.plain) == ("+8.00", "+0.00", "new")
        assert slower.style == table.get_component_rich_style("breakdown--slower", partial=True)
        assert same.style == table.get_component_rich_style("breakdown--detail", partial=True)  # within noise: dim
    with History(store) as history:
        (latest, first) = history.runs()
    assert (latest["id"], latest["iteration_ms"], first["id"]) == (2, 18.75, 1)


async def test_the_history_screen_lists_past_runs_pins_diffs_and_shows_a_past_run(tmp_path):
    app, _store = await run_with_history(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: compared(app))
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        assert app.screen.query_one(DataTable).row_count == 2
        assert list(app.screen.query_one(Sparkline).data) == [2560.0, 3413.3]  # oldest to newest
        await pilot.press("down", "b")  # pin run #1 as the Δ baseline
        await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen))
        assert app.state.history.pinned == 1 and "vs pinned run #1" in text_of(app.query_one(ThroughputPane))
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("down", "d")
        await wait_until(pilot, lambda: isinstance(app.screen, DiffScreen))
        diff = str(app.screen.text)
        assert "A: run 1" in diff and "B: run 2" in diff and "entry.py:40" in diff and "new" in diff
        await pilot.press("escape", "h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: past_run_of(app) == 1)
        assert "PAST RUN #1" in app.sub_title
        assert "2,560 samples/s" in text_of(app.query_one(ThroughputPane))
        assert shown_comparison(app.state) is None  # no Δ on a past run


async def test_the_history_screen_names_a_sweep_trials_knobs_and_has_no_knobs_column_without_them(tmp_path):
    current, baseline = current_and_baseline()
    store = tmp_path / "history.db"
    with History(store) as history:
        history.record(baseline, sweep_id="s1", knobs={"batch_size": 64, "precision": "bf16"})
    app, _factory = make_app([(current, True)], history=HistorySink(store))
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: compared(app))
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        table = app.screen.query_one(DataTable)
        assert (table.get_cell("1", "knobs"), table.get_cell("2", "knobs")) == ("precision=bf16", "")
    plain, _store = await run_with_history(tmp_path / "plain")
    async with plain.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: compared(plain))
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(plain.screen, HistoryScreen))
        assert "knobs" not in [str(column.label) for column in plain.screen.query_one(DataTable).columns.values()]


async def test_module_rows_get_a_delta_column_too(tmp_path):
    app, _store = await run_with_history(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: compared(app))
        await pilot.press("m")
        table = app.query_one(BreakdownTable)
        await wait_until(pilot, lambda: table.row_count > 0 and "module:fc2" in table.rows)
        slower, same, new = (table.get_cell(f"module:{path}", "delta") for path in ("fc2", "", "fc3"))
        assert (slower.plain, same.plain, new.plain) == ("+9.75", "+0.00", "new")
        assert slower.style == table.get_component_rich_style("breakdown--slower", partial=True)
        assert same.style == table.get_component_rich_style("breakdown--detail", partial=True)  # within noise: dim
        assert table.get_cell("optimizer", "delta").plain == ""  # not a line nor a module: no change to give


async def test_a_past_run_is_marked_and_escape_or_r_bring_the_live_run_back(tmp_path):
    app, _store = await run_with_history(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: compared(app))
        live_title = app.sub_title
        assert live_title.startswith("project root ")
        for back in ("escape", "r"):
            await pilot.press("h")
            await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
            await pilot.press("down", "enter")  # the older run: the hand-made baseline, #1
            await wait_until(pilot, lambda: past_run_of(app) == 1)
            throughput = app.query_one(ThroughputPane)
            assert "past run #1" in throughput.border_title and "2,560 samples/s" in text_of(throughput)
            assert "past run #1" in app.query_one(BreakdownTable).border_title
            await pilot.press(back)
            await wait_until(pilot, lambda: past_run_of(app) is None and finished(app))
            assert app.sub_title == live_title and "past run" not in (throughput.border_title or "")
            assert "3,413 samples/s" in text_of(throughput)


async def test_a_pinned_baseline_is_what_the_next_run_is_compared_with(tmp_path):
    app, store = await run_with_history(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: compared(app))
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("down", "b")  # the older run, #1
        await wait_until(pilot, lambda: app.state.history.pinned == 1)
        await pilot.press("r")  # run #3 of the store: the same report again, compared with #1, not with #2
        await wait_until(pilot, lambda: app.state.history.latest_run == 3 and compared(app))
        assert "▲ 33 % faster vs pinned run #1" in text_of(app.query_one(ThroughputPane))
    with History(store) as history:
        assert [run["id"] for run in history.runs()] == [3, 2, 1]


HEALTHY_ENTRY = REPO / "tests" / "fixtures" / "faults" / "healthy.py"  # a 8-16-2 MLP, batch_size=4


@pytest.mark.slow
async def test_the_real_app_path_records_each_finished_run_in_the_store(tmp_path):
    """The real worker (torch in a child process) profiles a tiny entry point; the run lands in the store
    the app was given, as `skyline-tui history` would list it."""
    from skyline_tui.tui.app import SkylineApp
    from skyline_tui.worker.client import WorkerClient

    store = tmp_path / "history.db"
    app = SkylineApp(str(HEALTHY_ENTRY), config=ProfileConfig.quick(predictions=False, health=False),
                     source=WorkerClient, gpu=FakeGpu(), history=HistorySink(store))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: finished(app) and app.state.history.latest_run is not None,
                         timeout=180, explain=lambda: describe_app(app))  # importing torch on a busy machine
        assert app.live.error is None, app.live.error
        shown = app.live.shown
    with History(store) as history:
        runs = history.runs()
        assert [run["id"] for run in runs] == [app.state.history.latest_run] == [1]
        (run,) = runs
        assert run["entry_point"] == shown.entry_point and run["entry_point"].endswith("healthy.py")
        assert run["batch_size"] == 4  # the fixture's default
        assert shown.device.type == "cpu" and run["device"] == shown.device.name  # it never moves to a GPU
        assert run["error_kind"] is None and run["status"] == "ok"
        assert run["samples_per_second"] == shown.throughput.samples_per_second > 0
        assert history.report(1).breakdown == shown.breakdown  # the full report, not only the summary


async def test_at_80_columns_a_long_change_line_is_cut_and_the_labels_stay_whole(tmp_path):
    app, _store = await run_with_history(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: compared(app))
        lines = text_of(app.query_one(ThroughputPane)).splitlines()
        memory = text_of(app.query_one(MemorySummary)).splitlines()
        assert any(line.strip().startswith("throughput ") for line in lines), lines
        assert any(line.strip().startswith("change ") and line.rstrip().endswith("…") for line in lines), lines
        assert any(line.strip().startswith("peak ") for line in memory), memory
        assert any(line.strip().startswith("change ") for line in memory), memory


async def test_each_profile_the_app_starts_carries_the_drift_its_store_learned(tmp_path):
    # Two runs of the unchanged MLP sample on this machine's CPU, 10 and 12 ms, recorded as the app records:
    # mean 11, each 1/11 from it; sigma = sqrt(2 * (1/11)²) = 12.86 %.  The app looks it up before each profile.
    from skyline_tui.history import record_run
    from skyline_tui.machine import cpu_name

    current, _ = current_and_baseline()
    here = current.replace(device=current.device.__class__(type="cpu", name=cpu_name(), memory_capacity_bytes=None))
    store = tmp_path / "history.db"
    for ms in (10.0, 12.0):
        run = here.replace(throughput=here.throughput.__class__(samples_per_second=64_000 / ms, iteration_ms=ms,
                                                                iteration_ms_stdev=0.1, iterations_measured=24))
        assert record_run(run, store, config=ProfileConfig.quick().to_dict()) is not None
    app, factory = make_app([(current, True)], history=HistorySink(store), config=ProfileConfig.quick())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: finished(app))
    (_entry, _root, config), = factory.source.submitted
    assert (config.drift_sigma, config.drift_device) == (pytest.approx(2 ** 0.5 / 11), cpu_name())
    assert config.replace(drift_sigma=None, drift_device=None) == ProfileConfig.quick()
