"""What a CI run checks after profiling: budgets (``--fail-if``) and a baseline (``--baseline``).

Both are read and validated before the profile starts (``prepare_checks``), so a typo or a missing
baseline file costs no profile; the same object then adds its results to the report (``apply``) and names
the failures (``failures``).  Used by the CLI and by the Python API.  Torch-free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from skyline_tui.checks.baseline import (
    DEFAULT_MAX_REGRESSION_PCT,
    BaselineError,
    baseline_drift,
    compare,
    failure_lines,
    load_baseline,
)
from skyline_tui.checks.budgets import Budget, BudgetError, evaluate, format_quantity, parse_budgets, sections_needed
from skyline_tui.comparison.rule import Drift
from skyline_tui.config import ProfileConfig
from skyline_tui.report import Report


class CheckError(ValueError):
    """A check that cannot run: its message is one line for the user."""


@dataclass(frozen=True)
class RunChecks:
    budgets: tuple[Budget, ...] = ()
    baseline: Optional[Report] = None
    baseline_source: str = ""
    max_regression_pct: float = DEFAULT_MAX_REGRESSION_PCT
    baseline_drift: Optional[Drift] = None  # between processes, learned in the store (a baseline run id)

    def apply(self, report: Report) -> Report:
        """The report with its budgets and baseline sections filled (a failed run is left as it is)."""
        if report.error is not None:
            return report
        changes: dict[str, Any] = {}
        if self.budgets:
            changes["budgets"] = evaluate(self.budgets, report)
        if self.baseline is not None:
            changes["baseline"] = compare(report, self.baseline, self.baseline_source, self.max_regression_pct,
                                          self.baseline_drift)
        return report.replace(**changes) if changes else report

    def failures(self, report: Report) -> list[str]:
        """One line per failed budget and per regressed metric of an ``apply``-ed report."""
        lines = [budget.failure_line(result) for budget, result in zip(self.budgets, report.budgets)
                 if not result.ok]
        if report.baseline is not None:
            lines += failure_lines(report.baseline, lambda value, metric: format_quantity(value, metric))
        return lines


def prepare_checks(config: ProfileConfig, fail_if: Sequence[str] = (), baseline: Optional[str] = None,
                   max_regression_pct: Optional[float] = None,
                   history_path: Optional[str | os.PathLike[str]] = None) -> RunChecks:
    """Parse the budgets and read the baseline (a file, or a run id of the store at ``history_path``);
    raises :class:`CheckError` naming the problem."""
    try:
        budgets = parse_budgets(list(fail_if))
        baseline_report = load_baseline(baseline, history_path) if baseline is not None else None
    except (BudgetError, BaselineError) as exc:
        raise CheckError(str(exc)) from None
    skipped = sorted(section for section in sections_needed(budgets)
                     if hasattr(config, section) and not getattr(config, section))
    if skipped:
        raise CheckError(f"a budget reads {', '.join(skipped)}, which this run skips (--no-{skipped[0]})")
    if max_regression_pct is not None and baseline is None:
        raise CheckError("--max-regression needs --baseline")
    check_trace_path(config)
    pct = DEFAULT_MAX_REGRESSION_PCT if max_regression_pct is None else max_regression_pct
    if not pct >= 0:
        raise CheckError(f"--max-regression must be a percentage of at least 0, not {pct:g}")
    drift = baseline_drift(baseline, history_path) if baseline is not None else None
    return RunChecks(budgets=tuple(budgets), baseline=baseline_report, baseline_source=baseline or "",
                     max_regression_pct=pct, baseline_drift=drift)


def check_trace_path(config: ProfileConfig) -> None:
    """A trace needs the breakdown's instruments and a folder to go to; both are known before the run."""
    if not config.trace_path:
        return
    if not config.breakdown:
        raise CheckError("--trace needs the run-time breakdown (drop --no-breakdown)")
    folder = os.path.dirname(os.path.abspath(config.trace_path))
    if not os.path.isdir(folder):
        raise CheckError(f"cannot write the trace to {config.trace_path}: no folder {folder}")
