"""Training health: each answer is known independently of the publisher (a plain loop, a construction).

Models live in tests/fixtures/health/; each seeds its own providers, so a test can rebuild the same fresh
model, inputs and optimizer and compute the expected numbers in a plain loop.
"""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
from types import ModuleType

import pytest
import torch
from conftest import FIXTURES, QUICK_FLAGS, run_cli

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.run import profile
from skyline_tui.report import Health, ModuleHealth, Report

HEALTH = FIXTURES / "health"
ITERATIONS = 5


def health_of(name: str, iterations: int = ITERATIONS) -> Health:
    config = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health_iterations=iterations,
                                 health_budget_s=60.0)
    report = profile(str(HEALTH / f"{name}.py"), None, config)
    assert report.error is None, report.error
    assert report.health is not None
    return report.health


def module(health: Health, path: str) -> ModuleHealth:
    return next(row for row in health.modules if row.module == path)


def flags(row: ModuleHealth) -> set[str]:
    return {flag.kind for flag in row.flags}


def import_fixture(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"health_fixture_{name}", HEALTH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def marked_line(name: str, marker: str) -> int:
    lines = (HEALTH / f"{name}.py").read_text().splitlines()
    return next(i for i, text in enumerate(lines, start=1) if marker in text)


def test_a_layer_cut_off_by_detach_is_flagged_no_gradient_and_only_it():
    health = health_of("detached")
    assert health.iterations == ITERATIONS
    cut, head = module(health, "cut"), module(health, "head")
    assert flags(cut) == {"no_gradient"}
    assert cut.metrics["grad_norm"].series == (0.0,) * ITERATIONS
    assert "no_gradient" not in flags(head)
    assert head.metrics["grad_norm"].median > 0


def test_update_to_weight_matches_a_plain_loop_and_flags_the_odd_learning_rates():
    health = health_of("learning_rates")
    entry = import_fixture("learning_rates")
    # The same fresh model, inputs and optimizer, stepped in a plain loop: ||w_after - w_before|| / ||w_before||
    # over each layer's weight and bias together.
    model = entry.skyline_model_provider()
    x, y = entry.skyline_input_provider()
    optimizer = entry.make_optimizer(model)
    expected: dict[str, list[float]] = {name: [] for name in entry.LEARNING_RATES}
    for _ in range(ITERATIONS):
        before = {name: torch.cat([p.detach().clone().reshape(-1) for p in getattr(model, name).parameters()])
                  for name in expected}
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        for name in expected:
            after = torch.cat([p.detach().reshape(-1) for p in getattr(model, name).parameters()])
            expected[name].append(float((after - before[name]).norm() / before[name].norm()))
    for name, series in expected.items():
        reported = module(health, name).metrics["update_to_weight"].series
        assert reported == pytest.approx(series, rel=1e-4, abs=1e-12), name
    # fast: 300x the others' learning rate; slow: 1e-7x, its updates round away (the plain loop's ratios are 0)
    assert flags(module(health, "fast")) == {"update_ratio_high"}
    assert flags(module(health, "slow")) == {"update_ratio_low"}
    assert expected["slow"] == [0.0] * ITERATIONS
    for name in ("first", "normal", "middle", "late", "head"):
        assert flags(module(health, name)) == set(), name
    # The message says what was compared: the value, the band, and the learning rate against the others'.
    (fast,) = module(health, "fast").flags
    assert f"{statistics.median(expected['fast']):.1e}" in fast.message
    assert "band" in fast.message and "median" in fast.message
    assert "learning rate 3 is 300x the model's typical 0.01" in fast.message
    (slow,) = module(health, "slow").flags
    assert "floor 1e-07" in slow.message and "learning rate 1e-09" in slow.message


def test_a_relu_after_a_bias_of_minus_100_is_all_dead_and_a_tanh_after_plus_100_saturated():
    health = health_of("activations")
    relu, tanh = module(health, "relu"), module(health, "tanh")
    assert relu.metrics["dead_fraction"].series == pytest.approx([1.0] * ITERATIONS)
    assert "dead_units" in flags(relu)
    assert tanh.metrics["saturation"].series == pytest.approx([1.0] * ITERATIONS)
    assert "saturated" in flags(tanh)
    assert "saturation" not in relu.metrics and "dead_fraction" not in tanh.metrics
    # The layer after them is healthy: its units see 16 zeros and 16 ones, not dead ones.
    assert flags(module(health, "head")) == set()


def test_a_relu_called_three_times_is_judged_and_located_at_its_last_call_and_says_so():
    health = health_of("shared_relu")
    relu = module(health, "relu")
    # The third call follows a bias of -100: all dead; the first two pass about half (a plain forward, below).
    assert relu.metrics["dead_fraction"].series == pytest.approx([1.0] * ITERATIONS)
    (flag,) = relu.flags
    assert flag.kind == "dead_units" and "in the last of its 3 calls an iteration" in flag.message
    assert (relu.file, relu.line) == ("shared_relu.py", marked_line("shared_relu", "LAST CALL"))
    entry = import_fixture("shared_relu")
    model, (x, _y) = entry.skyline_model_provider(), entry.skyline_input_provider()
    with torch.no_grad():
        first = model.relu(model.fc1(x))
    low, high = torch.aminmax(first, dim=0)
    assert float(((low == 0) & (high == 0)).float().mean()) < 0.5
    for path in ("fc1", "fc2", "fc3", "head"):  # called once: no word about calls
        assert all("calls" not in f.message for f in module(health, path).flags), path


def test_the_log_of_a_negative_number_is_located_at_its_line_in_forward():
    health = health_of("log_negative")
    found = health.non_finite
    assert found is not None
    assert (found.file, found.line, found.phase, found.iteration) == (
        "log_negative.py", marked_line("log_negative", "NON-FINITE HERE"), "forward", 0)
    assert found.module is None  # outside the model: the loss line
    assert "log" in found.message
    assert health.iterations == 1  # what follows a NaN is NaN


def test_a_meant_minus_inf_mask_does_not_hide_a_later_nan():
    health = health_of("masked_then_nan")
    found = health.non_finite
    assert found is not None
    assert (found.file, found.line, found.phase) == (
        "masked_then_nan.py", marked_line("masked_then_nan", "NON-FINITE HERE"), "forward")
    assert "log" in found.message


def test_an_infinite_gradient_is_located_at_the_forward_line_that_made_it():
    health = health_of("sqrt_zero")
    found = health.non_finite
    assert found is not None
    assert (found.file, found.line, found.phase) == ("sqrt_zero.py", marked_line("sqrt_zero", "NON-FINITE HERE"),
                                                     "backward")


def test_a_users_subscriber_gets_its_series_and_one_that_raises_spoils_nothing_else():
    health = health_of("subscribers")
    entry = import_fixture("subscribers")
    model = entry.skyline_model_provider()  # the fresh model's weights before the first step
    first = module(health, "0")
    assert first.metrics["weight_max"].series[0] == pytest.approx(float(model[0].weight.detach().abs().max()))
    assert "weight_max" not in module(health, "1").metrics  # a ReLU has no weights: skipped, not an error
    # layer_gradients reached the subscriber through the in-place ReLU after module 0
    assert all(v is not None and v > 0 for v in first.metrics["layer_gradient_abs_mean"].series)
    assert "broken" not in first.metrics
    assert {"update_to_weight", "grad_norm", "activation_mean"} <= set(first.metrics)
    (error,) = health.errors
    assert error.subscriber == "broken"
    assert "this metric is broken on purpose" in error.message
    assert (error.file, error.line) == ("subscribers.py", marked_line("subscribers", "BROKEN HERE"))


def test_installed_subscribers_come_through_the_entry_point_group(tmp_path, monkeypatch):
    # A real (if tiny) installed distribution on sys.path, found by importlib.metadata.
    (tmp_path / "extra_metrics.py").write_text(
        "from skyline_tui.health import Subscriber\n"
        "class ParameterCount(Subscriber):\n"
        "    name = 'parameter_count'\n"
        "    kinds = ('weights',)\n"
        "    def compute(self, module_name, module, data):\n"
        "        return data['weights'].numel()\n")
    dist = tmp_path / "extra_metrics-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-metrics\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[skyline_tui.health]\nparameter_count = extra_metrics:ParameterCount\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    health = health_of("detached", iterations=2)
    assert module(health, "cut").metrics["parameter_count"].series == (8 * 16 + 16, 8 * 16 + 16)
    assert module(health, "head").metrics["parameter_count"].last == 16 * 2 + 2
    sys.modules.pop("extra_metrics", None)


def test_no_health_skips_the_phase():
    config = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health=False)
    report = profile(str(HEALTH / "detached.py"), None, config)
    assert report.error is None and report.throughput is not None and report.health is None


def test_health_budget_bounds_the_phase_from_the_command_line():
    # sleepy.py sleeps 20 ms in each iteration: five take at least 100 ms, past a 0.1 s budget, so no sixth runs
    # (the default 5 s would allow all 20).  A budget of 60 s lets every one of the 20 run.
    sleepy = str(FIXTURES / "ci" / "sleepy.py")
    only_health = ["--no-breakdown", "--no-memory", "--no-predictions", "-q"]
    for budget, most, least in (("0.1", 5, 1), ("60", 20, 20)):
        result = run_cli(sleepy, "--json", "-", *QUICK_FLAGS, *only_health, "--health-budget", budget)
        assert result.returncode == 0, result.stderr
        health = Report.from_json(result.stdout).health
        assert health is not None and least <= health.iterations <= most, (budget, health.iterations)
    refused = run_cli(sleepy, "--json", "-", "--health-budget", "0")
    assert refused.returncode == 2 and "--health-budget: must be positive: 0" in refused.stderr


def test_a_nan_still_gives_the_whole_report_through_the_worker():
    result = run_cli(str(HEALTH / "log_negative.py"), "--json", "-", "-q", *QUICK_FLAGS)
    assert result.returncode == 0, result.stderr
    report = Report.from_json(result.stdout)
    for section in ("throughput", "breakdown", "memory", "predictions"):
        assert getattr(report, section) is not None, section
    assert report.health is not None and report.health.non_finite is not None
    assert report.health.non_finite.line == marked_line("log_negative", "NON-FINITE HERE")
    # Every number in the JSON is finite (a NaN series value is null), as strict JSON demands.
    json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert all(v is None or math.isfinite(v) for row in report.health.modules for m in row.metrics.values()
               for v in m.series)


def test_health_metrics_round_trip_through_json_and_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from skyline_tui.schema import json_schema

    report = Report(entry_point="e.py", project_root="/p", health=health_of("activations", iterations=2))
    data = json.loads(report.to_json())
    jsonschema.validate(data, json_schema())
    assert Report.from_dict(data) == report
    assert set(data["health"]["modules"][0]["metrics"]["grad_norm"]) == {"last", "median", "series"}


def test_the_timing_phases_model_is_left_without_hooks(write_entry):
    # The health phase builds its own model: the workload's model keeps no hook and its weights did not move.
    from skyline_tui.profiler.entry import load_entry_point
    from skyline_tui.profiler.health import measure_health
    from skyline_tui.profiler.workload import load_workload

    work = load_workload(load_entry_point(write_entry()), 4)
    before = [p.detach().clone() for p in work.model.parameters()]
    measure_health(work, ProfileConfig.quick(health_iterations=3))
    assert all(torch.equal(a, b) for a, b in zip(before, work.model.parameters()))
    for mod in work.model.modules():
        assert not mod._forward_hooks and not mod._forward_pre_hooks and not mod._backward_hooks


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_torchscript_model_skips_health_with_its_reason_and_the_report_stands():
    # Its modules raise on every hook: the health phase had failed the whole profile as the user's error.
    health = health_of("scripted")
    assert health.iterations == 0 and health.modules == ()
    assert "TorchScript" in health.errors[0].message
