"""The history store: every finished profile run in one SQLite file (stdlib ``sqlite3``, WAL).

Several processes may write at once (a sweep, two terminals): each write is one ``BEGIN IMMEDIATE``
transaction, SQLite's busy timeout makes a writer wait for another, and a writer that still finds the
file busy retries until its deadline, so no run is lost to "database is locked".  A process killed in the
middle of a write loses only its own uncommitted run: WAL rolls it back on the next open.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Sequence, TextIO, TypeVar, Union

from skyline_tui.history.metrics import insert_metrics, metric_columns, metric_rows, metrics_frame
from skyline_tui.history.migrations import SCHEMA_VERSION, STEPS, statements
from skyline_tui.history.provenance import Provenance, provenance
from skyline_tui.report import Report, ReportFormatError

if TYPE_CHECKING:
    from skyline_tui.run.events import Step
    from skyline_tui.run.summary import RunSummary

StrPath = Union[str, "os.PathLike[str]"]
T = TypeVar("T")

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
# How long a writer keeps trying while other processes hold the write lock.  A write takes milliseconds,
# so this is only reached when something is badly wrong (a process holding a transaction open).
DEFAULT_BUSY_TIMEOUT_S = 30.0
_COMPRESSION_LEVEL = 6


class HistoryError(Exception):
    """The store cannot be used: the message names the file and says why, in one line."""


class HistoryVersionError(HistoryError):
    """The store was written by a newer skyline-tui; it is left untouched."""


class History:
    """``History(path)``: record runs, list them, get a run's report back, or all runs as a DataFrame.

    The file (and its folder) is created on first use unless ``create=False``, in which case a missing
    file is a :class:`HistoryError`.  Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: StrPath, *, create: bool = True,
                 busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self._create = create
        self._busy_timeout_s = busy_timeout_s
        self._connection: sqlite3.Connection | None = None

    # -- opening --------------------------------------------------------------------------------------

    def __enter__(self) -> History:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        if not self._create and not self.path.is_file():
            raise HistoryError(f"no history store at {self.path}")
        if self._create:
            prepare_folder(self.path.parent)
        # isolation_level=None: we say where each transaction begins (BEGIN IMMEDIATE) and ends.
        connection = sqlite3.connect(str(self.path), timeout=self._busy_timeout_s, isolation_level=None)
        try:
            self._retrying(lambda: self._prepare(connection))
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise HistoryError(f"{self.path} is not a usable history store: {exc}") from None
        except BaseException:
            connection.close()
            raise
        return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        # The version is checked before anything is written, so a newer store is never touched.
        version = _user_version(connection)
        if version > SCHEMA_VERSION:
            raise HistoryVersionError(
                f"{self.path} was written by a newer skyline-tui (store version {version}, this one reads "
                f"up to {SCHEMA_VERSION}); upgrade skyline-tui or choose another file with --history")
        connection.execute("PRAGMA foreign_keys = ON")
        if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            connection.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts the file; a power cut may lose the last run, a kill does not.
        connection.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            self._migrate(connection)

    def _migrate(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = _user_version(connection)  # another process may have migrated while we waited
            for step in STEPS[version:]:
                for statement in statements(step):
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _retrying(self, action: Callable[[], T]) -> T:
        """Run ``action``, again while SQLite says the file is busy: the busy timeout covers most waits,
        but some (a WAL checkpoint or recovery in another process) return SQLITE_BUSY at once."""
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.005
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

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
        connection = self._db()

        def write() -> int:
            connection.execute("BEGIN IMMEDIATE")
            try:
                cursor = connection.execute(
                    f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                    tuple(run.values()))
                run_id = int(cursor.lastrowid or 0)
                connection.executemany("INSERT INTO lines VALUES (?, ?, ?, ?, ?, ?)",
                                       [(run_id, *row) for row in lines])
                connection.executemany("INSERT INTO modules VALUES (?, ?, ?, ?, ?, ?, ?)",
                                       [(run_id, *row) for row in modules])
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return run_id

        return self._retrying(write)

    def record_run(self, summary: RunSummary, steps: Sequence[Step], *, project_root: str,
                   config: dict[str, Any] | None = None, sweep_id: str | None = None,
                   knobs: dict[str, Any] | None = None,
                   metrics: Sequence[tuple[int, str, float]] = ()) -> int:
        """Record a supervised training run (kind ``train``): its summary, argv, provenance and steps."""
        from skyline_tui.history.train_steps import STEP_COLUMNS, step_rows

        origin = provenance(project_root)
        body = zlib.compress(summary.to_json(indent=None).encode("utf-8"), _COMPRESSION_LEVEL)
        script = summary.script
        entry = script if script.startswith("-m ") else os.path.abspath(os.path.join(summary.cwd or "", script))
        run = {
            "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "entry_point": entry, "project_root": os.path.abspath(project_root) if project_root else "",
            "torch_version": summary.torch_version, "config_json": _json_or_none(config),
            "git_commit": origin.git_commit,
            "git_dirty": None if origin.git_dirty is None else int(origin.git_dirty),
            "source_hash": origin.source_hash, "samples_per_second": summary.samples_per_second,
            "iteration_ms": summary.step_ms.median, "peak_bytes": summary.memory.peak_allocated
            if summary.memory.peak_allocated is not None else summary.memory.peak_rss,
            "error_kind": summary.error.kind if summary.error else None, "kind": "train",
            "argv_json": json.dumps(list(summary.argv)), "steps": summary.steps, "exit_code": summary.exit_code,
            "final_loss": summary.loss.last, "report_zlib": body,
            "sweep_id": sweep_id, "knobs_json": _json_or_none(knobs),
        }
        rows = step_rows(steps)
        connection = self._db()

        def write() -> int:
            connection.execute("BEGIN IMMEDIATE")
            try:
                cursor = connection.execute(
                    f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})", tuple(run.values()))
                run_id = int(cursor.lastrowid or 0)
                connection.executemany(
                    f"INSERT INTO steps (run_id, {', '.join(STEP_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * (len(STEP_COLUMNS) + 1))})", [(run_id, *row) for row in rows])
                insert_metrics(connection, run_id, metrics)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return run_id

        return self._retrying(write)

    def record_metrics(self, run_id: int, records: list[tuple[int, str, float]]) -> None:
        """Append ``(step, name, value)`` records (``track.log``'s) to run ``run_id``, in one transaction."""
        connection = self._db()

        def write() -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                insert_metrics(connection, run_id, records)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

        self._retrying(write)

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
        from skyline_tui.history.train_steps import STEP_COLUMNS

        pandas = _pandas("History.steps()")
        rows = self._retrying(lambda: self._db().execute(
            f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE run_id = ? ORDER BY step", (run_id,)).fetchall())
        if not rows and not self._retrying(
                lambda: self._db().execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()):
            raise HistoryError(f"no run {run_id} in {self.path}")
        frame = pandas.DataFrame.from_records(rows, columns=list(STEP_COLUMNS))
        frame["losses"] = [json.loads(text) if text else None for text in frame.pop("losses_json")]
        return frame.set_index("step")

    def metrics(self, run_id: int) -> Any:
        """What run ``run_id``'s script logged with ``track.log``: a DataFrame with a ``step`` column and
        one column per metric (NaN where a metric was not logged at a step)."""
        rows = self._retrying(lambda: metric_rows(self._db(), run_id))
        return metrics_frame(rows)

    def dataframe(self, kind: str | None = None) -> Any:
        """All runs (of ``kind``: "profile" or "train"), one row each, ``config`` and ``knobs`` flattened into
        ``config.NAME`` and ``knobs.NAME`` columns, and what a script logged with ``track.log`` into
        ``metrics.NAME.final``/``.min``/``.max`` (pandas is the optional extra ``skyline-tui[pandas]``)."""
        pandas = _pandas("History.dataframe()")
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


def _pandas(what: str) -> Any:
    try:
        import pandas  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError(f"{what} needs pandas: pip install 'skyline-tui[pandas]'") from None
    return pandas


def record_run_safely(summary: RunSummary, steps: Sequence[Step], path: StrPath | None, *, project_root: str,
                      stream: TextIO | None = None, **options: Any) -> int | None:
    """Record a training run; a store that cannot be written costs one warning line, never the run.
    ``options``: record_run's (sweep_id, knobs, metrics)."""
    if path is None:
        return None
    try:
        with History(path) as history:
            return history.record_run(summary, steps, project_root=project_root, **options)
    except Exception as exc:  # noqa: BLE001 - the run is over and summarised; the history is a bonus
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"skyline-tui: warning: run not recorded in history ({path}: {reason})", file=stream)
        return None


def prepare_folder(folder: Path) -> None:
    """Create the store's folder; our own ``.skyline-tui`` folder gets a ``.gitignore`` of ``*`` so the
    store never lands in the user's repository."""
    folder.mkdir(parents=True, exist_ok=True)
    if folder.name == ".skyline-tui":
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n", encoding="utf-8")


def _user_version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def _run_row(report: Report, origin: Provenance, config: dict[str, Any] | None, sweep_id: str | None,
             knobs: dict[str, Any] | None) -> dict[str, Any]:
    throughput, memory = report.throughput, report.memory
    created = report.created_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = zlib.compress(report.to_json(indent=None).encode("utf-8"), _COMPRESSION_LEVEL)
    return {
        "created_at": created,
        # Absolute, so `history ENTRY` finds a run whatever folder it was started from.
        "entry_point": os.path.abspath(report.entry_point) if report.entry_point else "",
        "project_root": os.path.abspath(report.project_root) if report.project_root else "",
        "batch_size": report.batch_size,
        "device": report.device.name if report.device else None,
        "torch_version": report.torch_version,
        "config_json": _json_or_none(config),
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
        "knobs_json": _json_or_none(knobs),
        "cpu_contention": throughput.cpu_contention if throughput else None,
        "page_faults_per_iteration": throughput.page_faults_per_iteration if throughput else None,
        "page_fault_ms": throughput.page_fault_ms if throughput else None,
        "report_zlib": body,
    }


def _json_or_none(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


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
