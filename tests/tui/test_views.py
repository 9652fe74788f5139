"""The pure parts under the panes: prediction math, rows, bars, formats, live state, NVML, lexing."""

from __future__ import annotations

import dataclasses

import types

import pytest

from app_support import FIXTURES, load_report, partial
from skyline_tui.tui.gpu import NOT_AVAILABLE, GpuMonitor
from skyline_tui.tui.state import LiveState, apply_report, fail_run, pane_note
from skyline_tui.report import ErrorInfo, LinearFit, Report
from skyline_tui.predictions.targets import fine_step, step_batch_size, target_prediction
from skyline_tui.tui.views import format as fmt
from skyline_tui.tui.views.bars import split_bar
from skyline_tui.tui.table_rows import activation_rows, breakdown_rows
from skyline_tui.tui.views.source import lex_file

MLP = load_report("mlp_cpu")
TRANSFORMER = load_report("transformer_cuda")

# ---- fixtures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_fixture_reports_round_trip(path):
    text = path.read_text()
    assert Report.from_json(text).to_json() + "\n" == text


def test_fixtures_cover_every_section_and_an_error():
    assert all(getattr(MLP, s) is not None for s in ("throughput", "breakdown", "memory", "predictions"))
    assert load_report("mlp_error").error.line == 20


# ---- targets -------------------------------------------------------------------------------------------


def test_at_the_profiled_batch_size_the_numbers_are_measured():
    target = target_prediction(MLP, 64)
    assert target.measured
    assert target.iteration_ms == MLP.throughput.iteration_ms
    assert target.peak_bytes == MLP.memory.peak_bytes
    assert target.fits is True


def test_other_batch_sizes_evaluate_the_linear_fits():
    target = target_prediction(MLP, 128)
    fit = MLP.predictions.run_time_ms
    assert not target.measured
    assert target.iteration_ms == pytest.approx(fit.slope * 128 + fit.bias)
    assert target.samples_per_second == pytest.approx(128_000 / (fit.slope * 128 + fit.bias))
    memory_fit = MLP.predictions.peak_memory_bytes
    assert target.peak_bytes == round(memory_fit.slope * 128 + memory_fit.bias)


def test_where_the_curve_bends_other_batch_sizes_read_the_measured_times():
    # The same report with time_model "points" (what the profiler says when no line passes near every
    # point): mlp_cpu.json measured 32: 10.1, 64: 18.8 and 128: 36.0 ms.  At 128, the measurement; 96 lies
    # halfway between 64 and 128: (18.8 + 36.0) / 2 = 27.4 ms; 144, beyond, continues the last segment:
    # 36.0 + 16 * 17.2 / 64 = 40.3 ms (by hand).
    points = MLP.replace(predictions=dataclasses.replace(MLP.predictions, time_model="points"))
    assert target_prediction(points, 128).iteration_ms == pytest.approx(36.0)
    assert target_prediction(points, 96).iteration_ms == pytest.approx(27.4)
    assert target_prediction(points, 144).iteration_ms == pytest.approx(40.3)
    # The first segment (32: 10.1 ms, 64: 40.1 ms) continued down to 8 is below zero: no time.
    steep = tuple(dataclasses.replace(s, iteration_ms=40.1) if s.batch_size == 64 else s
                  for s in MLP.predictions.samples)
    steep_report = points.replace(predictions=dataclasses.replace(points.predictions, samples=steep))
    assert target_prediction(steep_report, 8).iteration_ms is None


def test_a_predicted_peak_above_capacity_does_not_fit():
    assert target_prediction(TRANSFORMER, 64).fits is True
    too_big = target_prediction(TRANSFORMER, 128)
    assert too_big.peak_bytes > too_big.capacity_bytes and too_big.fits is False


def test_a_batch_size_that_ran_out_of_memory_never_fits():
    report = MLP.replace(predictions=MLP.predictions.__class__(**{**MLP.predictions.__dict__, "oom_batch_size": 100}))
    assert target_prediction(report, 99).fits is True
    assert target_prediction(report, 100).fits is False


def test_without_fits_the_prediction_is_unknown_not_wrong():
    report = MLP.replace(predictions=None, memory=None)
    target = target_prediction(report, 128)
    assert (target.iteration_ms, target.samples_per_second, target.peak_bytes, target.fits) == (None, None, None, None)


def test_a_fit_extrapolated_below_zero_gives_no_time():
    predictions = MLP.predictions.__class__(**{**MLP.predictions.__dict__, "run_time_ms": LinearFit(1.0, -50.0, 0.9)})
    assert target_prediction(MLP.replace(predictions=predictions), 8).iteration_ms is None


def test_fine_steps_scale_with_the_batch_size():
    assert [fine_step(b) for b in (1, 8, 64, 100, 1024)] == [1, 1, 8, 8, 128]


def test_batch_steps_snap_to_round_numbers_and_stay_positive():
    assert step_batch_size(64, +1) == 72
    assert step_batch_size(64, -1) == 60
    assert step_batch_size(60, +1) == 64
    assert step_batch_size(65, -1) == 64
    assert step_batch_size(64, +1, coarse=True) == 128
    assert step_batch_size(64, -1, coarse=True) == 32
    assert step_batch_size(1, -1) == 1 and step_batch_size(1, -1, coarse=True) == 1


def test_batch_steps_down_then_up_return_to_a_round_start():
    for start in (2, 7, 32, 64, 96, 512):
        assert step_batch_size(step_batch_size(start, -1), +1) == start


def test_batch_steps_off_the_grid_snap_onto_it():
    assert step_batch_size(500, -1) == 480 and step_batch_size(480, +1) == 512


# ---- rows ----------------------------------------------------------------------------------------------


def test_line_rows_are_sorted_by_cost_and_include_optimizer_and_other():
    rows = breakdown_rows(MLP.breakdown)
    totals = [row.total_ms for row in rows]
    assert totals == sorted(totals, reverse=True)
    kinds = {row.kind for row in rows}
    assert {"line", "optimizer", "other"} <= kinds
    assert rows[0].label == "entry.py:20" and rows[0].detail == "x = F.relu(self.fc2(x))"
    optimizer = next(row for row in rows if row.kind == "optimizer")
    assert optimizer.other_ms == MLP.breakdown.optimizer_ms and optimizer.file is None


def test_row_shares_add_up_to_the_attributed_part_of_the_iteration():
    rows = breakdown_rows(MLP.breakdown)
    shares = sum(row.forward_share + row.backward_share + row.other_share for row in rows)
    attributed = sum(row.total_ms for row in rows) / MLP.breakdown.profiled_iteration_ms
    assert shares == pytest.approx(attributed)


def test_activation_rows_and_the_line_each_points_at():
    rows = activation_rows(TRANSFORMER.memory, limit=3)
    assert [row.label for row in rows] == ["blocks.0.attn", "blocks.1.attn", "blocks.0.fc1"]
    assert len([row for row in rows if (row.file, row.line) == ("model.py", 22)]) == 2


# ---- bars and formats ------------------------------------------------------------------------------------


def test_split_bar_fills_exactly_the_width_with_distinct_glyphs():
    from rich.style import Style

    bar = split_bar([(0.25, "█", Style()), (0.5, "▒", Style())], 12)
    assert bar.plain == "███▒▒▒▒▒▒···"
    assert split_bar([(0.7, "█", Style()), (0.7, "▒", Style())], 10).plain == "███████▒▒▒"  # clipped at full
    assert split_bar([], 4).plain == "····"


def test_formats_carry_units():
    assert fmt.ms(0.42) == "0.42 ms" and fmt.ms(18.75) == "18.8 ms" and fmt.ms(135.4) == "135 ms"
    assert fmt.ms(17660) == "17.66 s" and fmt.ms(None) == "N/A"
    assert fmt.size(512) == "512 B" and fmt.size(13_900_000) == "13.3 MiB" and fmt.size(40 << 30) == "40.0 GiB"
    assert fmt.rate(3413.3) == "3,413" and fmt.rate(12.34) == "12.3"
    assert fmt.location("a.py", 3) == "a.py:3" and fmt.location(None, 3) == ""


# ---- live state ----------------------------------------------------------------------------------------------


def test_a_partial_report_replaces_only_what_it_measured():
    state = apply_report(LiveState(), 1, MLP)
    newer = MLP.replace(throughput=MLP.throughput.__class__(10.0, 6400.0, 1.0, 3))
    state = apply_report(state, 2, partial(newer, "throughput"))
    assert state.shown.throughput.samples_per_second == 10.0
    assert state.shown.breakdown == MLP.breakdown
    assert state.run_of("throughput") == 2 and state.run_of("breakdown") == 1


def test_a_pane_note_says_when_only_the_fit_is_from_the_previous_run():
    state = apply_report(LiveState(), 1, MLP)
    assert pane_note(state, "throughput", 1, running=False, shows_fit=True) is None
    state = apply_report(state, 2, partial(MLP, "throughput"))  # run 2 under way: no fit yet
    assert pane_note(state, "throughput", 2, running=True, shows_fit=True) == "fit from previous run"
    assert pane_note(state, "throughput", 2, running=True) is None  # a pane that shows no fitted row
    assert pane_note(state, "memory", 2, running=True, shows_fit=True) == "previous run"  # all of it is old
    state = apply_report(state, 2, MLP)
    assert pane_note(state, "throughput", 2, running=False, shows_fit=True) is None
    assert pane_note(LiveState(), "throughput", None, running=True, shows_fit=True) == "measuring…"


def test_a_failed_run_keeps_every_section_and_records_the_error():
    state = apply_report(LiveState(), 1, MLP)
    state = apply_report(state, 2, load_report("mlp_error"))
    assert state.shown.throughput == MLP.throughput and state.shown.memory == MLP.memory
    assert state.error.kind == "user_code" and state.error_run == 2
    assert state.shown.error is None  # the error lives beside the report, not in it
    state = apply_report(state, 3, MLP)
    assert state.error is None


def test_the_batch_size_stays_with_the_throughput_it_was_measured_at():
    state = apply_report(LiveState(), 1, MLP)
    state = apply_report(state, 2, partial(MLP.replace(batch_size=128)))
    assert state.shown.batch_size == 64


def test_fail_run_keeps_the_report():
    state = fail_run(apply_report(LiveState(), 1, MLP), 1, ErrorInfo("crash", "gone"))
    assert state.shown.throughput == MLP.throughput and state.error.kind == "crash"


# ---- NVML ----------------------------------------------------------------------------------------------


def test_without_nvml_every_query_is_not_available_and_the_problem_is_told_once():
    def missing():
        raise ImportError("No module named 'pynvml'")

    monitor = GpuMonitor(nvml_loader=missing)
    assert monitor.sample() is NOT_AVAILABLE and monitor.sample() is NOT_AVAILABLE
    assert "no NVIDIA driver" in monitor.take_problem()
    assert monitor.take_problem() is None


def fake_nvml(fail_temperature: bool = False):
    def temperature(handle, sensor):
        if fail_temperature:
            raise RuntimeError("Not Supported")
        return 61

    return types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: "h0",
        nvmlDeviceGetName=lambda h: b"NVIDIA H200",
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=93, memory=40),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=10 << 30, total=140 << 30, free=130 << 30),
        nvmlDeviceGetTemperature=temperature,
    )


def test_nvml_readings_and_an_unsupported_field_is_none():
    sample = GpuMonitor(nvml_loader=lambda: fake_nvml(fail_temperature=True)).sample()
    assert sample.name == "NVIDIA H200" and sample.utilization_percent == 93
    assert sample.memory_total_bytes == 140 << 30 and sample.temperature_c is None


def test_a_gpu_nvml_does_not_know_is_not_available():
    monitor = GpuMonitor(nvml_loader=fake_nvml)  # its one GPU has no UUID to match
    assert monitor.sample("0c6f1c3e-0000-0000-0000-000000000003") is NOT_AVAILABLE
    assert "0c6f1c3e-0000-0000-0000-000000000003" in monitor.take_problem()


def test_the_real_pynvml_never_raises_here():
    import torch  # the test process may: the CUDA runtime is a second, independent witness of the card

    sample = GpuMonitor().sample()  # no driver on CI machines: N/A; on a GPU box: real numbers
    if not torch.cuda.is_available():
        assert sample is NOT_AVAILABLE
        return
    # NVML and the CUDA runtime describe the same card 0 (CUDA_VISIBLE_DEVICES unset on test machines).
    assert sample.name == torch.cuda.get_device_name(0)
    assert sample.memory_total_bytes == pytest.approx(torch.cuda.get_device_properties(0).total_memory, rel=0.05)


# ---- lexing ------------------------------------------------------------------------------------------------


def test_lexing_keeps_one_entry_per_line_even_inside_docstrings(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('"""doc\nstring"""\n\nx = 1  # one\n')
    lexed = lex_file(path)
    assert [("".join(t for t, _ in line)) for line in lexed.lines] == ['"""doc', 'string"""', "", "x = 1  # one"]
    assert ("# one", "comment") in lexed.lines[3]


def test_a_file_of_thousands_of_lines_lexes(tmp_path):
    path = tmp_path / "big.py"
    path.write_text("".join(f"def f{i}(x):\n    return x * {i}  # line\n" for i in range(3000)))
    assert len(lex_file(path).lines) == 6000


def test_an_unreadable_file_becomes_a_message(tmp_path):
    lexed = lex_file(tmp_path / "missing.py")
    assert "cannot read" in lexed.lines[0][0][0]


# ---- changes against the baseline run ------------------------------------------------------------------


def test_a_change_within_an_unknown_drift_is_dim_and_says_so():
    from rich.style import Style

    from skyline_tui.comparison.changes import Change
    from skyline_tui.tui.views.delta import change_text

    better, worse, muted = Style(color="green"), Style(color="red"), Style(dim=True)
    unknown = change_text(Change(percent=33.3, verdict="unknown", direction="faster"), better, worse, muted,
                          "previous run #1")
    assert unknown.plain == "▲ 33 % faster vs previous run #1 (within unknown drift)"
    assert {span.style for span in unknown.spans} == {muted}
    faster = change_text(Change(percent=33.3, verdict="faster", direction="faster"), better, worse, muted, "run #1")
    assert faster.plain == "▲ 33 % faster vs run #1" and better in {span.style for span in faster.spans}
