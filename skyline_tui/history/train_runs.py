"""Training runs in the history store (kind ``train``, recorded by ``skyline-tui run``): writing one with its
steps, and reading back its summary and its steps.  Profiles are :class:`skyline_tui.history.store.History`'s
own; both share the store's file and transactions (:mod:`skyline_tui.history.connection`).

Torch-free: a run's summary and steps are plain dataclasses of ``skyline_tui.run``'s parent side.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from skyline_tui.history.connection import (
    COMPRESSION_LEVEL,
    HistoryError,
    StoreConnection,
    json_or_none,
    pandas_module,
)
from skyline_tui.history.metrics import insert_metrics
from skyline_tui.history.provenance import provenance
from skyline_tui.history.train_steps import STEP_COLUMNS, step_rows

if TYPE_CHECKING:
    import sqlite3

    from skyline_tui.run.events import Step
    from skyline_tui.run.summary import RunSummary


class TrainRuns(StoreConnection):
    """The store's training runs: ``record_run``, ``summary(run_id)``, ``steps(run_id)``."""

    def record_run(self, summary: RunSummary, steps: Sequence[Step], *, project_root: str,
                   config: dict[str, Any] | None = None, sweep_id: str | None = None,
                   knobs: dict[str, Any] | None = None, metrics: Sequence[tuple[int, str, float]] = ()) -> int:
        """Record a supervised training run (kind ``train``): its summary, argv, provenance, steps and what it
        logged with ``track.log`` (``metrics``: (step, name, value))."""
        origin = provenance(project_root)  # outside the transaction: git may take a while
        body = zlib.compress(summary.to_json(indent=None).encode("utf-8"), COMPRESSION_LEVEL)
        script = summary.script
        entry = script if script.startswith("-m ") else os.path.abspath(os.path.join(summary.cwd or "", script))
        run = {
            "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "entry_point": entry, "project_root": os.path.abspath(project_root) if project_root else "",
            "torch_version": summary.torch_version, "config_json": json_or_none(config),
            "git_commit": origin.git_commit,
            "git_dirty": None if origin.git_dirty is None else int(origin.git_dirty),
            "source_hash": origin.source_hash, "samples_per_second": summary.samples_per_second,
            "iteration_ms": summary.step_ms.median, "peak_bytes": summary.memory.peak_allocated
            if summary.memory.peak_allocated is not None else summary.memory.peak_rss,
            "error_kind": summary.error.kind if summary.error else None, "kind": "train",
            "argv_json": json.dumps(list(summary.argv)), "steps": summary.steps, "exit_code": summary.exit_code,
            "final_loss": summary.loss.last, "report_zlib": body, "sweep_id": sweep_id,
            "knobs_json": json_or_none(knobs),
        }
        rows = step_rows(steps)

        def write(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})", tuple(run.values()))
            run_id = int(cursor.lastrowid or 0)
            connection.executemany(
                f"INSERT INTO steps (run_id, {', '.join(STEP_COLUMNS)}) "
                f"VALUES ({', '.join('?' * (len(STEP_COLUMNS) + 1))})", [(run_id, *row) for row in rows])
            insert_metrics(connection, run_id, metrics)
            return run_id

        return self._transaction(write)

    def summary(self, run_id: int) -> RunSummary:
        """A training run's summary (kind ``train``)."""
        from skyline_tui.run.summary import RunSummary

        row = self._retrying(
            lambda: self._db().execute("SELECT report_zlib, kind FROM runs WHERE id = ?", (run_id,)).fetchone())
        if row is None:
            raise HistoryError(f"no run {run_id} in {self.path}")
        if row[1] != "train":
            raise HistoryError(f"run {run_id} in {self.path} is a profile, not a training run: History.report(run_id)")
        try:
            return RunSummary.from_dict(json.loads(zlib.decompress(row[0]).decode("utf-8")))
        except (zlib.error, UnicodeDecodeError, ValueError) as exc:
            raise HistoryError(f"run {run_id} in {self.path} cannot be read back: {exc}") from None

    def steps(self, run_id: int) -> Any:
        """A training run's steps as a DataFrame indexed by step (``steps_merged`` > 1 where downsampled;
        ``losses`` the step's losses, as a list, where not)."""
        pandas = pandas_module("History.steps()")
        rows = self._retrying(lambda: self._db().execute(
            f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE run_id = ? ORDER BY step", (run_id,)).fetchall())
        if not rows and not self._retrying(
                lambda: self._db().execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()):
            raise HistoryError(f"no run {run_id} in {self.path}")
        frame = pandas.DataFrame.from_records(rows, columns=list(STEP_COLUMNS))
        frame["losses"] = [json.loads(text) if text else None for text in frame.pop("losses_json")]
        return frame.set_index("step")
