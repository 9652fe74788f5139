"""Where the history store lives.

Default: ``<project root>/.skyline-tui/history.db``.  ``--history PATH`` or ``SKYLINE_TUI_HISTORY=PATH``
choose another file (``SKYLINE_TUI_HISTORY=off`` records nothing, like ``--no-history``).
"""

from __future__ import annotations

import os
from pathlib import Path


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

