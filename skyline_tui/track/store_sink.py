"""A plain run's metrics (``python train.py``): one run of kind ``train`` in the project's history store,
its metrics rows appended batch by batch.  The project root is found from the script as for a profile, and
the store chosen as for every command (``SKYLINE_TUI_HISTORY=PATH`` another file, ``=off`` none).

Nothing watched the run's steps (that is ``skyline-tui run``), so its summary says 0 steps and why, and its
exit status is unknown (null): the row is written with the first batch, before the script ends."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from skyline_tui.history.location import resolve_history_path
from skyline_tui.history.store import History
from skyline_tui.project import find_project_root
from skyline_tui.track.values import Record


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
            self.run_id = self.history.record_run(plain_summary(self.script), (), project_root=self.root,
                                                  metrics=records)
            return
        self.history.record_metrics(self.run_id, records)

    def close(self) -> None:
        self.history.close()


PLAIN_RUN = ("a plain run (python SCRIPT): its steps were not watched, only what it logged with "
             "skyline_tui.track; run it with 'skyline-tui run' for steps, samples/s and memory")


def plain_summary(script: str) -> Any:
    from skyline_tui.run.summary import LossSummary, PhaseTimes, RunMemory, RunSummary, StepTimes

    return RunSummary(script=script, argv=tuple(sys.argv), exit_code=None, steps=0, samples_per_second=None,
                      step_ms=StepTimes(None, None), phases_ms=PhaseTimes(None, None, None, None),
                      loss=LossSummary(None, None, None), memory=RunMemory(None, None, None),
                      why_no_steps=PLAIN_RUN, cwd=os.getcwd())
