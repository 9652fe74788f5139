"""Performance budgets: ``--fail-if 'peak_memory > 2GiB'`` fails a CI run whose report breaks one.

An expression is ``METRIC OP VALUE``.  ``METRIC`` is a short name (``METRICS``) or a dotted path to a
number in the report (``throughput.samples_per_second``); ``OP`` is ``<``, ``<=``, ``>`` or ``>=``;
``VALUE`` is a number with an optional unit.  A time metric (``*_ms``) takes ``ms`` or ``s`` and a size
metric (``*_bytes``) takes ``KiB``/``MiB``/``GiB`` (powers of 1024) or ``KB``/``MB``/``GB`` (powers of
1000); a bare number is in the report's own unit (milliseconds, bytes).  Expressions are parsed against the
report's dataclasses before anything runs, so a typo costs no profile.  Torch-free.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from skyline_tui import report as r
from skyline_tui.report import BudgetResult, Report

# Short names for the numbers people budget.  Any other number of the report is reachable by its path.
METRICS: dict[str, str] = {
    "samples_per_second": "throughput.samples_per_second",
    "iteration_ms": "throughput.iteration_ms",
    "iteration_ms_stdev": "throughput.iteration_ms_stdev",
    "profiled_iteration_ms": "breakdown.profiled_iteration_ms",
    "optimizer_ms": "breakdown.optimizer_ms",
    "peak_memory": "memory.peak_bytes",
    "weights": "memory.weights_bytes",
    "gradients": "memory.gradients_bytes",
    "optimizer_state": "memory.optimizer_state_bytes",
    "activations": "memory.activations_bytes",
    "max_batch_size": "predictions.max_batch_size",
    "predicted_max_samples_per_second": "predictions.predicted_max_samples_per_second",
}

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
}
TIME_UNITS = {"ms": 1.0, "s": 1000.0}
SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}

_EXPRESSION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|<|>)\s*"
                         r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")


class BudgetError(ValueError):
    """A budget expression that cannot be checked: malformed, an unknown metric, a wrong unit."""


@dataclass(frozen=True)
class Budget:
    expr: str
    metric: str  # the name as written (a short name or a path)
    path: str  # the dotted report path
    op: str
    limit: float  # in the report's unit (ms, bytes)
    unit: str  # the unit the user wrote ("" for none): messages speak it back

    def evaluate(self, report: Report) -> BudgetResult:
        value = metric_value(report, self.path)
        ok = value is not None and not OPERATORS[self.op](value, self.limit)
        return BudgetResult(expr=self.expr, metric=self.path, value=value, limit=self.limit, ok=ok)

    def failure_line(self, result: BudgetResult) -> str:
        """``budget failed: peak_memory 2.4 GiB > 2 GiB`` (or why there is no value to check)."""
        if result.value is None:
            section = self.path.split(".", 1)[0]
            return f"budget failed: {self.metric} was not measured (no {section} in the report): {self.expr}"
        return (f"budget failed: {self.metric} {format_quantity(result.value, self.path, self.unit)} {self.op} "
                f"{format_quantity(self.limit, self.path, self.unit)}")


def parse_budget(expr: str) -> Budget:
    match = _EXPRESSION.match(expr)
    if match is None:
        raise BudgetError(f"cannot read budget {expr!r}: expected METRIC OP VALUE, e.g. 'peak_memory > 2GiB' "
                          f"(OP one of {', '.join(sorted(OPERATORS))})")
    name, op, number, unit = match.groups()
    path = METRICS.get(name, name)
    kind = metric_kind(path)
    if kind is None:
        raise BudgetError(f"unknown metric {name!r} in budget {expr!r}: use a dotted path to a number in the report "
                          f"or one of {', '.join(METRICS)}")
    limit = float(number) * _unit_scale(unit, kind, name, expr)
    return Budget(expr=expr.strip(), metric=name, path=path, op=op, limit=limit, unit=unit)


def parse_budgets(exprs: Sequence[str]) -> list[Budget]:
    return [parse_budget(expr) for expr in exprs]


def evaluate(budgets: Sequence[Budget], report: Report) -> tuple[BudgetResult, ...]:
    return tuple(budget.evaluate(report) for budget in budgets)


def sections_needed(budgets: Sequence[Budget]) -> set[str]:
    """The report sections (phase names) the budgets read: a run that skips one cannot pass them."""
    return {budget.path.split(".", 1)[0] for budget in budgets}


def _unit_scale(unit: str, kind: str, name: str, expr: str) -> float:
    if not unit:
        return 1.0
    units: dict[str, float] = {"time": TIME_UNITS, "size": SIZE_UNITS}.get(kind, {})  # type: ignore[assignment]
    if unit not in units:
        allowed = ", ".join(units) if units else "none (a plain number)"
        raise BudgetError(f"unit {unit!r} does not fit {name} in budget {expr!r}: allowed units are {allowed}")
    return float(units[unit])


def metric_kind(path: str) -> Optional[str]:
    """"time", "size" or "number" when ``path`` names a number of the report's schema, else None."""
    tp: Any = r.Report
    for part in path.split("."):
        if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
            return None
        hints = typing.get_type_hints(tp, vars(r))
        if part not in hints or part not in {f.name for f in dataclasses.fields(tp)}:
            return None
        tp = _strip_optional(hints[part])
    if tp is bool or tp not in (int, float):
        return None
    leaf = path.rsplit(".", 1)[-1]
    return "time" if leaf.endswith("_ms") else "size" if leaf.endswith("_bytes") else "number"


def _strip_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) is not None and len(args) == 1 else tp


def metric_value(report: Report, path: str) -> Optional[float]:
    value: Any = report
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return float(value)


def format_quantity(value: float, path: str, unit: str = "") -> str:
    """``value`` (in the report's unit) in the unit the user wrote, else a readable one."""
    kind = metric_kind(path)
    if kind == "time":
        scale = TIME_UNITS.get(unit, 1.0)
        return f"{_number(value / scale)} {unit or 'ms'}"
    if kind == "size":
        if not unit:
            unit = next((u for u in ("GiB", "MiB", "KiB") if abs(value) >= SIZE_UNITS[u]), "B")
        return f"{_number(value / SIZE_UNITS[unit])} {unit}"
    return _number(value)


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
