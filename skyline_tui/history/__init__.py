"""The history of every profile run: a SQLite store, diffs between runs, and a DataFrame for analysis.

Torch-free and textual-free: the ``--json`` path, the ``history``/``diff`` verbs and the app's UI process
all import it.
"""

from skyline_tui.history.location import (
    HISTORY_ENV,
    default_history_path,
    resolve_history_path,
)
from skyline_tui.history.record import RUN_KINDS, record_run
from skyline_tui.history.migrations import SCHEMA_VERSION
from skyline_tui.history.store import History, HistoryError, HistoryVersionError

__all__ = [
    "HISTORY_ENV",
    "RUN_KINDS",
    "SCHEMA_VERSION",
    "History",
    "HistoryError",
    "HistoryVersionError",
    "default_history_path",
    "record_run",
    "resolve_history_path",
]
