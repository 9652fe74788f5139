"""Recording one finished run in the history store: the one way the CLI, a sweep, the app and ``skyline-tui run``
write to it.

A run is recorded after its report (or summary) is out, so a store that cannot be written (read-only, corrupt,
newer) costs one warning line naming the file, never the run.  Torch-free and textual-free.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO, Union

from skyline_tui.history.store import KINDS, History
from skyline_tui.report import Report

if TYPE_CHECKING:
    from skyline_tui.run.events import Step
    from skyline_tui.run.summary import RunSummary

# What a recorded run was: a profile (an entry point's providers, or a sweep's trial, recorded from its
# Report) or a supervised training run (``skyline-tui run``, recorded from its RunSummary and steps).
RUN_KINDS = KINDS


def record_run(run: Union[Report, RunSummary], store: str | os.PathLike[str] | None, *, kind: str = "profile",
               config: dict[str, Any] | None = None, sweep_id: str | None = None,
               knobs: dict[str, Any] | None = None, stream: TextIO | None = None,
               steps: Sequence[Step] = (), project_root: str | None = None,
               metrics: Sequence[tuple[int, str, float]] = ()) -> int | None:
    """Record ``run`` (a failed one too) in the store at ``store`` and return its id; None when ``store`` is
    None (history off) or on any failure, which prints one warning line on ``stream`` (default stderr) and
    never raises.  A profile (``kind="profile"``) is its ``Report``, with ``config`` its
    ``ProfileConfig.to_dict()``; a training run (``kind="train"``) is its ``RunSummary``, with its ``steps``
    and ``project_root``, and what its script logged with ``track.log`` (``metrics``).  A sweep's trial also
    gives its ``sweep_id`` and ``knobs``."""
    if kind not in RUN_KINDS:  # a caller's mistake, not the store's: say so rather than warn
        raise ValueError(f"unknown run kind {kind!r} (known: {', '.join(RUN_KINDS)})")
    if (kind == "profile") != isinstance(run, Report):
        raise ValueError(f"a run of kind {kind!r} is recorded from its "
                         f"{'Report' if kind == 'profile' else 'RunSummary'}, not a {type(run).__name__}")
    if store is None:
        return None
    try:
        with History(store) as history:
            if isinstance(run, Report):
                return history.record(run, config=config, sweep_id=sweep_id, knobs=knobs)
            return history.record_run(run, steps, project_root=project_root or "", config=config,
                                      sweep_id=sweep_id, knobs=knobs, metrics=metrics)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the run's report must still go out
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if str(store) not in reason:
            reason = f"{store}: {reason}"
        print(f"skyline-tui: warning: run not recorded in history ({reason})", file=stream or sys.stderr)
        return None
