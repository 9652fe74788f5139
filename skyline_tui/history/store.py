"""The history store: every finished run in one SQLite file (stdlib ``sqlite3``, WAL): profiles here, training
runs in :mod:`skyline_tui.history.train_runs`, the file, its transactions and errors in
:mod:`skyline_tui.history.connection`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from datetime import datetime, timezone
from typing import Any

from skyline_tui.history.connection import (
    COMPRESSION_LEVEL,
    DEFAULT_BUSY_TIMEOUT_S,
    HistoryError,
    HistoryVersionError,
    StrPath,
    json_or_none,
    pandas_module,
    prepare_folder,
)
from skyline_tui.history.metrics import insert_metrics, metric_columns, metric_rows, metrics_frame
from skyline_tui.history.provenance import Provenance, provenance
from skyline_tui.history.train_runs import TrainRuns
from skyline_tui.report import Report, ReportFormatError

# Names other modules (and users) import from here.
__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "KINDS", "RUN_FIELDS", "History", "HistoryError", "HistoryVersionError",
           "StrPath", "prepare_folder"]

# The columns of a run as runs() returns them (the report itself comes from report(run_id)).
RUN_FIELDS = (
    "id", "created_at", "entry_point", "project_root", "batch_size", "device", "torch_version",
    "git_commit", "git_dirty", "source_hash", "samples_per_second", "iteration_ms", "iteration_ms_stdev",
    "iterations_measured", "peak_bytes", "error_kind", "sweep_id", "config_json", "knobs_json",
    "cpu_contention", "page_faults_per_iteration", "page_fault_ms", "kind", "argv_json", "steps", "exit_code",
    "final_loss",
)
# Run kinds: a profile of an entry point, or a supervised training run (``skyline-tui run``).
KINDS = ("profile", "train")


class History(TrainRuns):
    """``History(path)``: record runs, list them, get a profile's report back (a training run's summary and
    steps: :class:`~skyline_tui.history.train_runs.TrainRuns`), or all runs as a DataFrame.

    The file (and its folder) is created on first use unless ``create=False``, in which case a missing
    file is a :class:`HistoryError`.  Use as a context manager, or call :meth:`close`.
    """

    # -- writing --------------------------------------------------------------------------------------

    def record(self, report: Report, *, config: dict[str, Any] | None = None, sweep_id: str | None = None,
               knobs: dict[str, Any] | None = None) -> int:
        """Record one finished run (failed ones too); returns its id."""
        origin = provenance(report.project_root)  # outside the transaction: git may take a while
        run = _run_row(report, origin, config, sweep_id, knobs)
        lines = [(ln.file, ln.line, ln.code, ln.forward_ms, ln.backward_ms)
                 for ln in (report.breakdown.lines if report.breakdown else ())]
        modules = [(m.path, m.type, m.forward_ms, m.backward_ms, m.self_forward_ms, m.self_backward_ms)
                   for m in (report.breakdown.modules if report.breakdown else ())]

        def write(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})", tuple(run.values()))
            run_id = int(cursor.lastrowid or 0)
            connection.executemany("INSERT INTO lines VALUES (?, ?, ?, ?, ?, ?)", [(run_id, *row) for row in lines])
            connection.executemany("INSERT INTO modules VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   [(run_id, *row) for row in modules])
            return run_id

        return self._transaction(write)

    # -- reading --------------------------------------------------------------------------------------

    def runs(self, entry: str | None = None, limit: int | None = None, *,
             batch_size: int | None = None, sweep_id: str | None = None,
             kind: str | None = None) -> list[dict[str, Any]]:
        """Runs newest first, as plain dicts (``config`` and ``knobs`` as dicts, ``git_dirty`` a bool)."""
        where, params = [], []  # type: list[str], list[Any]
        if entry is not None:
            where.append("entry_point IN (?, ?)")
            params += [entry, os.path.abspath(entry)]
        if batch_size is not None:
            where.append("batch_size = ?")
            params.append(batch_size)
        if sweep_id is not None:
            where.append("sweep_id = ?")
            params.append(sweep_id)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        sql = f"SELECT {', '.join(RUN_FIELDS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = self._retrying(lambda: self._db().execute(sql, params).fetchall())
        return [_run_dict(row) for row in rows]

    def kind(self, run_id: int) -> str:
        """Run ``run_id``'s kind ("profile" or "train")."""
        row = self._retrying(lambda: self._db().execute("SELECT kind FROM runs WHERE id = ?", (run_id,)).fetchone())
        if row is None:
            raise HistoryError(f"no run {run_id} in {self.path}")
        return str(row[0])

    def report(self, run_id: int) -> Report:
        row = self._retrying(
            lambda: self._db().execute("SELECT report_zlib, kind FROM runs WHERE id = ?", (run_id,)).fetchone())
        if row is None:
            raise HistoryError(f"no run {run_id} in {self.path}")
        if row[1] != "profile":
            raise HistoryError(f"run {run_id} in {self.path} is a training run, not a profile: "
                               "History.summary(run_id) and History.steps(run_id) read it")
        try:
            return Report.from_json(zlib.decompress(row[0]).decode("utf-8"))
        except (zlib.error, UnicodeDecodeError, ReportFormatError) as exc:
            raise HistoryError(f"run {run_id} in {self.path} cannot be read back: {exc}") from None

    def record_metrics(self, run_id: int, records: list[tuple[int, str, float]]) -> None:
        """Append ``(step, name, value)`` records (``track.log``'s) to run ``run_id``, in one transaction."""
        self._transaction(lambda connection: insert_metrics(connection, run_id, records))

    def metrics(self, run_id: int) -> Any:
        """What run ``run_id``'s script logged with ``track.log``: a DataFrame with a ``step`` column and
        one column per metric (NaN where a metric was not logged at a step)."""
        rows = self._retrying(lambda: metric_rows(self._db(), run_id))
        return metrics_frame(rows)

    def dataframe(self, kind: str | None = None) -> Any:
        """All runs (of ``kind``: "profile" or "train"), one row each, ``config`` and ``knobs`` flattened into
        ``config.NAME`` and ``knobs.NAME`` columns, and what a script logged with ``track.log`` into
        ``metrics.NAME.final``/``.min``/``.max`` (pandas is the optional extra ``skyline-tui[pandas]``)."""
        pandas = pandas_module("History.dataframe()")
        records = []
        runs = list(reversed(self.runs(kind=kind)))  # oldest first, like a log
        logged = self._retrying(lambda: metric_columns(self._db(), [run["id"] for run in runs]))
        for run in runs:
            flat = {key: value for key, value in run.items() if key not in ("config", "knobs")}
            for prefix in ("config", "knobs"):
                for key, value in (run[prefix] or {}).items():
                    flat[f"{prefix}.{key}"] = value
            flat.update(logged.get(run["id"], {}))
            records.append(flat)
        frame = pandas.DataFrame.from_records(records, columns=_frame_columns(records))
        frame["created_at"] = pandas.to_datetime(frame["created_at"], utc=True, format="ISO8601")
        return frame.set_index("id")


def _run_row(report: Report, origin: Provenance, config: dict[str, Any] | None, sweep_id: str | None,
             knobs: dict[str, Any] | None) -> dict[str, Any]:
    throughput, memory = report.throughput, report.memory
    created = report.created_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = zlib.compress(report.to_json(indent=None).encode("utf-8"), COMPRESSION_LEVEL)
    return {
        "created_at": created,
        # Absolute, so `history ENTRY` finds a run whatever folder it was started from.
        "entry_point": os.path.abspath(report.entry_point) if report.entry_point else "",
        "project_root": os.path.abspath(report.project_root) if report.project_root else "",
        "batch_size": report.batch_size,
        "device": report.device.name if report.device else None,
        "torch_version": report.torch_version,
        "config_json": json_or_none(config),
        "git_commit": origin.git_commit,
        "git_dirty": None if origin.git_dirty is None else int(origin.git_dirty),
        "source_hash": origin.source_hash,
        "samples_per_second": throughput.samples_per_second if throughput else None,
        "iteration_ms": throughput.iteration_ms if throughput else None,
        "iteration_ms_stdev": throughput.iteration_ms_stdev if throughput else None,
        "iterations_measured": throughput.iterations_measured if throughput else None,
        "peak_bytes": memory.peak_bytes if memory else None,
        "error_kind": report.error.kind if report.error else None,
        "sweep_id": sweep_id,
        "knobs_json": json_or_none(knobs),
        "cpu_contention": throughput.cpu_contention if throughput else None,
        "page_faults_per_iteration": throughput.page_faults_per_iteration if throughput else None,
        "page_fault_ms": throughput.page_fault_ms if throughput else None,
        "report_zlib": body,
    }


def _run_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    run = dict(zip(RUN_FIELDS, row))
    argv = run.pop("argv_json")
    run["argv"] = json.loads(argv) if argv else None
    for name in ("config", "knobs"):
        text = run.pop(f"{name}_json")
        run[name] = json.loads(text) if text else None
    if run["git_dirty"] is not None:
        run["git_dirty"] = bool(run["git_dirty"])
    run["status"] = "ok" if run["error_kind"] is None else run["error_kind"]
    if run["error_kind"] is None and run["exit_code"]:
        run["status"] = f"exit {run['exit_code']}"
    return run


def _frame_columns(records: list[dict[str, Any]]) -> list[str]:
    columns = [name for name in RUN_FIELDS if name not in ("config_json", "knobs_json", "argv_json")] + ["status"]
    seen = set(columns)
    for record in records:
        for key in record:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    return columns
