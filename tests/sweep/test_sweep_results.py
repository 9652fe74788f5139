"""The sweep's arithmetic without running anything: the cross product, the Pareto front, the JSON."""

from __future__ import annotations

from typing import Optional

from skyline_tui.config import ProfileConfig
from skyline_tui.report import ErrorInfo, MemoryBreakdown, Report, Throughput
from skyline_tui.sweep.results import (
    TrialResult,
    make_trials,
    pareto_flags,
    sweep_document,
)
from skyline_tui.sweep.spec import parse_spec


def result(index: int, samples_per_second: Optional[float], peak: Optional[int],
           error: Optional[str] = None) -> TrialResult:
    (trial,) = make_trials([{"i": index}], ProfileConfig())
    trial = type(trial)(index=index, knobs=trial.knobs, config=trial.config)
    throughput = None if samples_per_second is None else Throughput(
        samples_per_second=samples_per_second, iteration_ms=1.0, iteration_ms_stdev=0.0, iterations_measured=3)
    memory = None if peak is None else MemoryBreakdown(
        peak_bytes=peak, peak_source="test", capacity_bytes=None, weights_bytes=0, gradients_bytes=0,
        optimizer_state_bytes=0, activations_bytes=0, other_bytes=peak)
    report = Report(entry_point="e.py", project_root="", throughput=throughput, memory=memory,
                    error=None if error is None else ErrorInfo(kind=error, message=error))
    return TrialResult(trial=trial, report=report)


def test_the_pareto_front_keeps_each_trial_no_other_beats_on_both_speed_and_memory():
    results = [
        result(0, 100.0, 1000),  # fastest, largest: on the front
        result(1, 50.0, 200),  # slower but smaller: on the front
        result(2, 40.0, 500),  # beaten by #1 on both
        result(3, 100.0, 2000),  # as fast as #0 but larger: not strictly beaten on speed, so on the front
        result(4, 10.0, 100),  # slowest, smallest: on the front
        result(5, 500.0, 50, error="oom"),  # failed: never on the front, and beats nobody
    ]
    assert pareto_flags(results) == [True, True, False, True, True, False]


def test_the_json_lists_trials_in_spec_order_with_every_field():
    results = [result(1, 50.0, 200), result(0, None, None, error="user_code")]
    document = sweep_document("s1", "/e.py", results)
    assert document["sweep_id"] == "s1" and document["entry_point"] == "/e.py"
    assert [t["config"] for t in document["trials"]] == [{"i": 0}, {"i": 1}]
    assert document["trials"][0] == {"config": {"i": 0}, "samples_per_second": None, "iteration_ms": None,
                                     "peak_bytes": None, "error": {"kind": "user_code", "message": "user_code"},
                                     "pareto": False, "run_id": None}
    assert document["trials"][1]["pareto"] is True and document["trials"][1]["peak_bytes"] == 200


def test_the_trials_are_the_cross_product_in_file_order_with_constants_in_each():
    spec = parse_spec("a: {grid_search: [1, 2]}\nprecision: bf16\nb: {grid_search: [x, y, z]}\n", "s.yaml",
                      {"a", "b"})
    combos = spec.trials()
    assert len(combos) == 2 * 3
    assert combos[0] == {"a": 1, "precision": "bf16", "b": "x"}
    assert combos[-1] == {"a": 2, "precision": "bf16", "b": "z"}


def test_built_in_knobs_go_to_the_config_and_the_rest_to_the_providers():
    (trial,) = make_trials([{"batch_size": 8, "precision": "bf16", "channels_last": True, "compile": False,
                             "hidden": 3}], ProfileConfig(predictions=False))
    config = trial.config
    assert (config.batch_size, config.precision, config.channels_last, config.compile) == (8, "bf16", True, False)
    assert config.knobs == {"hidden": 3} and config.predictions is False
    assert ProfileConfig.from_dict(config.to_dict()) == config  # crosses the worker boundary intact


def test_a_provider_taking_kwargs_accepts_any_knob(tmp_path):
    from skyline_tui.sweep.spec import provider_parameters

    entry = tmp_path / "entry.py"
    entry.write_text("def skyline_model_provider(**options):\n    pass\n"
                     "def skyline_iteration_provider(model, lr=0.1):\n    pass\n")
    assert provider_parameters(str(entry)) is None
    entry.write_text("def skyline_model_provider(width=3):\n    pass\n"
                     "def skyline_input_provider(batch_size=4, *, seq_len=8):\n    pass\n"
                     "def skyline_iteration_provider(model, lr=0.1):\n    pass\n"
                     "def helper(other=1):\n    pass\n")
    assert provider_parameters(str(entry)) == {"width", "seq_len", "lr"}


def test_the_live_table_shows_progress_failures_and_the_best_so_far():
    from rich.console import Console

    from skyline_tui.sweep.table import SweepProgress, final_table

    fast, slow, broken = result(0, 200.0, 4096), result(1, 50.0, 1024), result(2, None, None, error="oom")
    progress = SweepProgress(total=4, where="this machine")
    for item in (slow, fast, broken):
        progress.started(item.trial)
        progress.finished(item)
    (waiting,) = make_trials([{"i": 3}], ProfileConfig())
    progress.started(type(waiting)(index=3, knobs=waiting.knobs, config=waiting.config))
    console = Console(record=True, width=200)
    console.print(progress)
    live = console.export_text()
    assert "3/4 done, 1 failed, 1 in flight" in live
    assert "best so far: 200.0 samples/s, peak 4.0 KiB  (i=0)" in live
    assert "in flight #4: i=3" in live
    console.print(final_table(progress.results))
    rows = [line for line in console.export_text().splitlines() if "i=" in line]
    # Fastest first, the failed one last with its error kind; both successful trials are Pareto-optimal
    # (the faster one is the larger).
    assert [row.split("│")[3].strip() for row in rows] == ["i=0", "i=1", "i=2"]
    assert [row.split("│")[2].strip() for row in rows] == ["*", "*", ""]
    assert "oom" in rows[2]


def test_each_gpu_gets_its_own_worker_and_none_or_one_gpu_share_one(monkeypatch):
    from skyline_tui.sweep.local import device_slots

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert device_slots() == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert device_slots() == [{}]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert device_slots() == [{}]


def test_the_final_table_shows_compile_time_apart_only_when_a_trial_compiled():
    from rich.console import Console

    from skyline_tui.sweep.table import final_table

    plain, compiled = result(0, 100.0, 10), result(1, 90.0, 10)
    compiled = TrialResult(trial=compiled.trial, report=compiled.report.replace(compile_ms=2345.0))
    console = Console(record=True, width=200)
    console.print(final_table([plain]))
    assert "compile ms" not in console.export_text()
    console.print(final_table([plain, compiled]))
    text = console.export_text()
    assert "compile ms" in text and "2,345" in text


def test_the_final_table_notes_a_trial_measured_on_a_busy_cpu_or_faulting_only_when_one_was():
    import dataclasses

    from rich.console import Console

    from skyline_tui.sweep.table import final_table

    quiet, busy = result(0, 100.0, 10), result(1, 90.0, 10)
    throughput = dataclasses.replace(busy.report.throughput, cpu_contention=0.81, page_faults_per_iteration=3622.0,
                                     page_fault_ms=0.5 * busy.report.throughput.iteration_ms)
    busy = TrialResult(trial=busy.trial, report=busy.report.replace(throughput=throughput))
    console = Console(record=True, width=200)
    console.print(final_table([quiet]))
    assert "note" not in console.export_text()
    console.print(final_table([quiet, busy]))
    text = console.export_text()
    assert "note" in text and "busy CPU 81%, page faults ≈" in text, text


def test_a_trial_measures_throughput_and_memory_and_the_breakdown_only_when_asked():
    from skyline_tui.cli import build_parser
    from skyline_tui.commands.sweep import trial_config

    plain = trial_config(build_parser("sweep").parse_args(["e.py", "s.yaml"]))
    assert (plain.memory, plain.breakdown, plain.predictions, plain.health) == (True, False, False, False)
    asked = trial_config(build_parser("sweep").parse_args(["e.py", "s.yaml", "--breakdown",
                                                           "--throughput-budget", "0.5"]))
    assert (asked.memory, asked.breakdown, asked.predictions, asked.throughput_budget_s) == (True, True, False, 0.5)


def test_the_bundled_sample_sweep_file_is_a_valid_grid_of_six_trials():
    from skyline_tui.sweep.spec import load_spec

    from ..conftest import REPO

    spec = load_spec(str(REPO / "samples" / "mlp" / "sweep.yaml"), str(REPO / "samples" / "mlp" / "entry.py"))
    assert len(spec.trials()) == 6
    assert {(t["batch_size"], t["precision"]) for t in spec.trials()} == {
        (b, p) for b in (32, 64, 128) for p in ("fp32", "bf16")}
