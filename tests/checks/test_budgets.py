"""Budgets (``--fail-if``): parsing against the report schema, units, and checks against hand-made reports."""

from __future__ import annotations

import pytest

from skyline_tui.checks.budgets import BudgetError, parse_budget
from skyline_tui.report import MemoryBreakdown, Predictions, Report, Throughput

GIB = 1024 ** 3


def report(peak_bytes: int = 1000, iteration_ms: float = 12.0) -> Report:
    return Report(
        entry_point="e.py", project_root="", batch_size=8,
        throughput=Throughput(samples_per_second=8000.0 / iteration_ms, iteration_ms=iteration_ms,
                              iteration_ms_stdev=0.1, iterations_measured=10),
        memory=MemoryBreakdown(peak_bytes=peak_bytes, peak_source="test", capacity_bytes=None, weights_bytes=400,
                               gradients_bytes=400, optimizer_state_bytes=0, activations_bytes=200, other_bytes=0),
    )


@pytest.mark.parametrize("expr, path, op, limit", [
    ("peak_memory > 2GiB", "memory.peak_bytes", ">", 2 * GIB),
    ("peak_memory>=1.5 MB", "memory.peak_bytes", ">=", 1_500_000),
    ("activations < 512KiB", "memory.activations_bytes", "<", 512 * 1024),
    ("weights <= 100", "memory.weights_bytes", "<=", 100),
    ("iteration_ms > 5ms", "throughput.iteration_ms", ">", 5.0),
    ("iteration_ms > 0.25s", "throughput.iteration_ms", ">", 250.0),
    ("samples_per_second < 1e3", "throughput.samples_per_second", "<", 1000.0),
    ("throughput.samples_per_second < 100", "throughput.samples_per_second", "<", 100.0),
    ("max_batch_size < 64", "predictions.max_batch_size", "<", 64),
    ("breakdown.other_ms > 3", "breakdown.other_ms", ">", 3.0),
])
def test_expressions_name_a_report_number_in_its_own_unit(expr, path, op, limit):
    budget = parse_budget(expr)
    assert (budget.path, budget.op, budget.limit) == (path, op, limit)


@pytest.mark.parametrize("expr, names", [
    ("peak_memory 2GiB", "METRIC OP VALUE"),
    ("peak_memory > ", "METRIC OP VALUE"),
    ("peak_memory == 3", "METRIC OP VALUE"),
    ("peek_memory > 2GiB", "unknown metric 'peek_memory'"),
    ("throughput.stable > 0", "unknown metric 'throughput.stable'"),  # a bool, not a number
    ("memory.entries > 0", "unknown metric 'memory.entries'"),  # a list
    ("memory.peak_bytes.x > 0", "unknown metric"),
    ("peak_memory > 2ms", "unit 'ms' does not fit peak_memory"),
    ("iteration_ms > 2GiB", "unit 'GiB' does not fit iteration_ms"),
    ("max_batch_size > 2MB", "unit 'MB' does not fit max_batch_size"),
])
def test_bad_expressions_are_refused_naming_the_problem(expr, names):
    with pytest.raises(BudgetError, match=names.replace("(", r"\(").replace(")", r"\)")):
        parse_budget(expr)


def test_a_budget_fails_when_its_condition_holds_and_says_so_in_the_units_written():
    budget = parse_budget("peak_memory > 2GiB")
    over = budget.evaluate(report(peak_bytes=int(2.4 * GIB)))
    assert (over.ok, over.value, over.limit, over.metric) == (False, int(2.4 * GIB), 2 * GIB, "memory.peak_bytes")
    assert budget.failure_line(over) == "budget failed: peak_memory 2.4 GiB > 2 GiB"
    assert budget.evaluate(report(peak_bytes=2 * GIB)).ok  # equal is not above


def test_time_budgets_compare_milliseconds_whatever_unit_was_written():
    assert not parse_budget("iteration_ms > 0.01s").evaluate(report(iteration_ms=12.0)).ok
    assert parse_budget("iteration_ms > 0.015s").evaluate(report(iteration_ms=12.0)).ok
    line = parse_budget("iteration_ms >= 10ms")
    assert line.failure_line(line.evaluate(report(iteration_ms=12.0))) == "budget failed: iteration_ms 12 ms >= 10 ms"


def test_a_budget_on_something_not_measured_fails_rather_than_passes():
    budget = parse_budget("max_batch_size < 64")
    result = budget.evaluate(report())  # no predictions section
    assert (result.ok, result.value) == (False, None)
    assert "not measured" in budget.failure_line(result)
    measured = report().replace(predictions=Predictions(samples=(), run_time_ms=None, peak_memory_bytes=None,
                                                        predicted_max_samples_per_second=None, max_batch_size=128))
    assert budget.evaluate(measured).ok
