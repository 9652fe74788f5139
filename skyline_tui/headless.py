"""One headless profile: the run behind ``skyline-tui ENTRY --json``, ``skyline_tui.profile()`` and a Ray
sweep's trials, with what each needs before it (the checks, the store a baseline run id is read from).

Never imports textual, nor torch in this process: the run happens in the worker (imported when a run
starts, so a missing entry point costs no worker).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from skyline_tui.checks import RunChecks, prepare_checks
from skyline_tui.config import ProfileConfig
from skyline_tui.project import entry_problem, project_root
from skyline_tui.report import Report

if TYPE_CHECKING:
    from skyline_tui.worker import protocol as p


def profile_headless(entry: str, root: Optional[str], config: ProfileConfig, *,
                     on_event: Optional[Callable[[p.Event], None]] = None,
                     on_final: Optional[Callable[[Report], None]] = None) -> Report:
    """Profile ``entry`` once in a fresh worker and return the final report; never raises for the user's
    mistakes (a missing entry point, an exception, a timeout: all in ``report.error``).

    ``on_event`` sees the worker's events (the user's output, each phase's report); ``on_final(report)``
    is called exactly once, as soon as the final report is in (the CLI writes it there, while the worker is
    still shutting down)."""
    problem = entry_problem(entry, root)
    if problem is not None:
        report = Report(entry_point=entry, project_root=root or "", error=problem)
        if on_final is not None:
            on_final(report)
        return report
    from skyline_tui.worker.client import profile_once

    return profile_once(entry, root, config, on_event=on_event, on_final=on_final)


def prepare_run_checks(entry: str, root: Optional[str], config: ProfileConfig, budgets: Sequence[str] = (),
                       baseline: Optional[str] = None, max_regression_pct: Optional[float] = None,
                       history: Optional[str] = None) -> RunChecks:
    """``--fail-if``/``--baseline``/``--max-regression`` (or the API's ``budgets``/``baseline``), read before
    anything runs: a typo in a budget or a missing baseline costs no run.  Raises
    :class:`~skyline_tui.checks.CheckError`."""
    store = history_to_read(entry, root, history) if baseline is not None else None
    return prepare_checks(config, budgets, baseline, max_regression_pct, history_path=store)


def history_to_read(entry: str, root: Optional[str], history: Optional[str] = None) -> Optional[Path]:
    """Where ``--baseline RUN_ID`` looks, and the drift the predictions are judged with
    (:func:`~skyline_tui.history.lookup.with_learned_drift`): the store this run would record into
    (``--history``, else $SKYLINE_TUI_HISTORY, else the project's); ``--no-history`` only stops the recording."""
    from skyline_tui.history import resolve_history_path

    return resolve_history_path(history, False, project_root(entry, root))


def trace_path(path: str | os.PathLike[str]) -> str:
    """Where ``--trace PATH`` (or ``trace=``) is written: absolute, because the run child works in the
    project's folder and would put a relative path there."""
    return os.path.abspath(path)
