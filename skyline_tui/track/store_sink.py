"""A plain run's metrics (``python train.py``): one run in the project's history store, its metrics rows
appended batch by batch.  The project root is found from the script as for a profile, and the store chosen
as for every command (``SKYLINE_TUI_HISTORY=PATH`` another file, ``SKYLINE_TUI_HISTORY=off`` none)."""

from __future__ import annotations

import os
import sys
from typing import Optional

from skyline_tui.history.location import resolve_history_path
from skyline_tui.history.store import History
from skyline_tui.project import find_project_root
from skyline_tui.report import Report
from skyline_tui.track.recorder import Record


def script_path() -> Optional[str]:
    """The script this process runs (``__main__``'s file), absolute; None for ``python -c`` or a REPL."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c") else None)
    return os.path.abspath(path) if path and os.path.isfile(path) else None


class StoreSink:
    def __init__(self, history: History, script: str, root: str) -> None:
        self.history = history
        self.script = script
        self.root = root
        self.run_id: Optional[int] = None

    @classmethod
    def for_this_process(cls) -> Optional[StoreSink]:
        script = script_path()
        root = str(find_project_root(script)) if script else os.getcwd()
        path = resolve_history_path(None, False, root)
        if path is None:
            return None
        return cls(History(path), script or "<no script>", root)

    def write(self, records: list[Record]) -> None:
        if self.run_id is None:
            # The run is created with its first batch: a script that logs nothing leaves no run behind.
            report = Report(entry_point=self.script, project_root=self.root)
            self.run_id = self.history.record(report, config={"argv": sys.argv[1:]})
        self.history.record_metrics(self.run_id, records)

    def close(self) -> None:
        self.history.close()
