"""Regressions against a baseline report: ``--baseline FILE|RUN_ID --max-regression PCT``.

``RUN_ID`` (digits, and no such file) is a run of the history store (``skyline-tui history`` lists them).

Three numbers are compared: throughput (samples/s, higher is better), iteration time and peak memory
(lower is better).  A metric regresses only when it is worse by more than ``PCT`` percent of the baseline
AND by more than the noise of the two runs, by :mod:`skyline_tui.comparison.rule` (``diff``'s and the app's
rule, with ``PCT`` as its allowance): ``NOISE_SIGMAS`` times the two runs' spreads added together, each its
own standard deviation plus, when the history store knows it, the drift between processes.  A machine that
is merely busier than the one that made the baseline (a large stdev) therefore does not fail CI on its own.

The standard deviation comes from ``throughput.iteration_ms_stdev``; samples/s is ``batch·1000/ms``, so
its deviation is taken as ``samples/s · stdev/ms`` (first order).  Peak memory has no spread (noise 0).
Improvements never fail.  Torch-free.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from skyline_tui.comparison.drift import drift_between
from skyline_tui.comparison.rule import NOISE_SIGMAS, Drift, noise
from skyline_tui.report import BaselineComparison, MetricChange, Report, ReportFormatError

DEFAULT_MAX_REGRESSION_PCT = 10.0


class BaselineError(ValueError):
    """The baseline cannot be read: no such file, not a report, a run id without a history store."""


def is_run_id(source: str) -> bool:
    """``--baseline 42`` names run 42 of the store, unless a file of that name exists."""
    return not (os.path.exists(source) or source.endswith(".json") or not source.strip().isdigit())


def load_baseline(source: str, history_path: Optional[str | os.PathLike[str]] = None) -> Report:
    """A report file, or (when no such file exists) the id of a run in the history store at
    ``history_path``."""
    if not is_run_id(source):
        try:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise BaselineError(f"cannot read baseline {source}: {exc.strerror or exc}") from None
        try:
            report = Report.from_json(text)
        except ReportFormatError as exc:
            raise BaselineError(f"baseline {source} is not a skyline-tui report: {exc}") from None
    else:
        report = _history_report(int(source), history_path)
    if report.throughput is None and report.memory is None:
        why = f" (its run failed: {report.error.message})" if report.error is not None else ""
        raise BaselineError(f"baseline {source} has neither throughput nor memory to compare with{why}")
    return report


def _history_report(run_id: int, history_path: Optional[str | os.PathLike[str]]) -> Report:
    from skyline_tui.history import History, HistoryError  # sqlite: only when a run id is asked for

    if history_path is None:
        raise BaselineError(f"--baseline {run_id}: no such file, and no history store to look the run up in "
                            f"(the history is turned off)")
    if not os.path.isfile(history_path):
        raise BaselineError(f"--baseline {run_id}: no such file, and no history store at {history_path}")
    try:
        with History(history_path, create=False) as history:
            return history.report(run_id)
    except HistoryError as exc:
        raise BaselineError(f"--baseline {run_id}: {exc}") from None


def baseline_drift(source: str, history_path: Optional[str | os.PathLike[str]]) -> Optional[Drift]:
    """For a baseline run of the store, the drift between processes learned there for its entry point and
    machine (:mod:`skyline_tui.comparison.drift`); None for a report file (no store to learn from)."""
    if not is_run_id(source) or history_path is None or not os.path.isfile(history_path):
        return None
    from skyline_tui.history import History, HistoryError

    try:
        with History(history_path, create=False) as history:
            return drift_between(history, int(source), None)
    except HistoryError:
        return None


def compare(current: Report, baseline: Report, source: str, max_regression_pct: float = DEFAULT_MAX_REGRESSION_PCT,
            drift: Optional[Drift] = None) -> BaselineComparison:
    """``drift``: between the two runs' processes, from the store (None: not known, not counted; the
    allowance has to cover it)."""
    changes: list[MetricChange] = []
    now, then = current.throughput, baseline.throughput
    known = drift if drift is not None and drift.known else None
    if now is not None and then is not None:
        changes.append(_change("throughput.samples_per_second", then.samples_per_second, now.samples_per_second,
                               noise(then.samples_per_second, now.samples_per_second,
                                     _rate_sigma(then.samples_per_second, then.iteration_ms, then.iteration_ms_stdev),
                                     _rate_sigma(now.samples_per_second, now.iteration_ms, now.iteration_ms_stdev),
                                     known),
                               max_regression_pct, higher_is_better=True))
        changes.append(_change("throughput.iteration_ms", then.iteration_ms, now.iteration_ms,
                               noise(then.iteration_ms, now.iteration_ms, then.iteration_ms_stdev,
                                     now.iteration_ms_stdev, known), max_regression_pct))
    if current.memory is not None and baseline.memory is not None:
        changes.append(_change("memory.peak_bytes", float(baseline.memory.peak_bytes),
                               float(current.memory.peak_bytes), 0.0, max_regression_pct))
    return BaselineComparison(source=source, max_regression_pct=max_regression_pct, noise_sigmas=NOISE_SIGMAS,
                              changes=tuple(changes), ok=not any(change.regressed for change in changes))


def _rate_sigma(rate: float, mean_ms: float, stdev_ms: float) -> float:
    return rate * stdev_ms / mean_ms if mean_ms > 0 else 0.0


def _change(metric: str, baseline: float, current: float, noise_allowed: float, max_pct: float,
            higher_is_better: bool = False) -> MetricChange:
    worse_by = baseline - current if higher_is_better else current - baseline
    change_pct = 100.0 * worse_by / baseline if baseline else 0.0
    return MetricChange(metric=metric, baseline=baseline, current=current, change_pct=change_pct,
                        noise=noise_allowed, regressed=change_pct > max_pct and worse_by > noise_allowed)


def failure_lines(comparison: BaselineComparison,
                  describe: Optional[Callable[[float, str], str]] = None) -> list[str]:
    """One line per regressed metric, for stderr."""
    show = describe or (lambda value, metric: f"{value:.4g}")
    return [f"regression: {c.metric} {show(c.current, c.metric)} vs {show(c.baseline, c.metric)} in "
            f"{comparison.source} ({c.change_pct:+.1f} % worse; allowed {comparison.max_regression_pct:g} %, "
            f"noise {show(c.noise, c.metric)})" for c in comparison.changes if c.regressed]
