"""Where the history store lives, and recording that never costs the user a profile.

Default: ``<project root>/.skyline-tui/history.db``.  ``--history PATH`` or ``SKYLINE_TUI_HISTORY=PATH``
choose another file (``SKYLINE_TUI_HISTORY=off`` records nothing, like ``--no-history``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TextIO

from skyline_tui.history.store import History
from skyline_tui.report import Report

HISTORY_ENV = "SKYLINE_TUI_HISTORY"
_OFF = ("off", "none", "0", "no")


def default_history_path(project_root: str | os.PathLike[str]) -> Path:
    return Path(project_root) / ".skyline-tui" / "history.db"


def resolve_history_path(cli_path: str | None, no_history: bool,
                         project_root: str | os.PathLike[str] | None) -> Path | None:
    """The file to record into, or None to record nothing.  Precedence: ``--no-history``, then
    ``--history PATH``, then ``$SKYLINE_TUI_HISTORY``, then the default under the project root."""
    if no_history:
        return None
    if cli_path:
        return Path(cli_path).expanduser()
    from_env = os.environ.get(HISTORY_ENV, "").strip()
    if from_env:
        return None if from_env.lower() in _OFF else Path(from_env).expanduser()
    if not project_root or not os.path.isdir(project_root):
        return None  # an entry point that was never found has no project to keep a history in
    return default_history_path(project_root)


def record_safely(report: Report, path: str | os.PathLike[str] | None, *, stream: TextIO | None = None,
                  **options: Any) -> int | None:
    """Record ``report`` into the store at ``path``; on any failure print one warning line naming the
    file and return None.  Never raises: the profile has already been reported, the history is a bonus."""
    if path is None:
        return None
    try:
        with History(path) as history:
            return history.record(report, **options)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the run's report must still go out
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if str(path) not in reason:
            reason = f"{path}: {reason}"
        print(f"skyline-tui: warning: run not recorded in history ({reason})", file=stream or sys.stderr)
        return None
