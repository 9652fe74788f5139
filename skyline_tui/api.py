"""The Python API: ``skyline_tui.profile("entry.py")`` runs the same profile as ``skyline-tui --json``.

The run happens in the worker subprocess (torch is imported there, not here), and the result is the
:class:`~skyline_tui.report.Report` dataclass the JSON comes from.  A failure in the user's code, a
timeout or a crash comes back in ``report.error``; only a mistake in the call itself (an unreadable
budget, a missing baseline file, an unknown option) raises, before anything runs.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from skyline_tui.config import ProfileConfig
from skyline_tui.headless import history_to_read, prepare_run_checks, profile_headless, trace_path
from skyline_tui.history.lookup import with_learned_drift
from skyline_tui.report import Report


def profile(entry: str | os.PathLike[str], batch_size: Optional[int] = None, *, root: Optional[str] = None,
            breakdown: bool = True, memory: bool = True, predictions: bool = True,
            timeout_s: Optional[float] = None, throughput_budget_s: Optional[float] = None,
            predictions_budget_s: Optional[float] = None, budgets: Sequence[str] = (),
            baseline: Optional[str] = None, max_regression_pct: Optional[float] = None,
            trace: Optional[str | os.PathLike[str]] = None, config: Optional[ProfileConfig] = None) -> Report:
    """Profile ``entry`` once and return its report.

    The options mirror the command line: ``predictions=False`` is ``--no-predictions``, ``timeout_s`` is
    ``--timeout``, ``budgets=["iteration_ms > 50ms"]`` are ``--fail-if`` expressions (their results are in
    ``report.budgets``), ``baseline``/``max_regression_pct`` are ``--baseline``/``--max-regression`` (a report file or a
    history run id)
    (``report.baseline``), ``trace`` is ``--trace``.  ``config`` starts from a given
    :class:`~skyline_tui.config.ProfileConfig` (e.g. ``ProfileConfig.quick()``) instead of the defaults.  The
    predictions judge their points with the drift between processes the history store (``$SKYLINE_TUI_HISTORY``,
    else the project's) learned for ``entry`` on this machine, as ``--json`` does; nothing is recorded there.
    Raises ``ValueError`` for an unreadable budget or baseline; never for a failure of the profiled code.
    """
    changes: dict[str, object] = {"breakdown": breakdown, "memory": memory, "predictions": predictions}
    for name, value in (("batch_size", batch_size), ("timeout_s", timeout_s),
                        ("throughput_budget_s", throughput_budget_s), ("predictions_budget_s", predictions_budget_s)):
        if value is not None:
            changes[name] = value
    if trace is not None:
        changes["trace_path"] = trace_path(trace)
    run_config = with_learned_drift((config or ProfileConfig()).replace(**changes),
                                    history_to_read(os.fspath(entry), root), os.fspath(entry))
    checks = prepare_run_checks(os.fspath(entry), root, run_config, budgets, baseline, max_regression_pct)
    return checks.apply(profile_headless(os.fspath(entry), root, run_config))

