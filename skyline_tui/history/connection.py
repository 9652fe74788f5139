"""The history store's SQLite file: opening it (created, migrated, version-checked), write transactions that
wait for other processes, and the errors that name the file.  :class:`skyline_tui.history.store.History` is
built on it (profiles there, training runs in :mod:`skyline_tui.history.train_runs`).

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
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, Union

from skyline_tui.history.migrations import SCHEMA_VERSION, STEPS, statements

StrPath = Union[str, "os.PathLike[str]"]
T = TypeVar("T")

# How long a writer keeps trying while other processes hold the write lock.  A write takes milliseconds,
# so this is only reached when something is badly wrong (a process holding a transaction open).
DEFAULT_BUSY_TIMEOUT_S = 30.0
COMPRESSION_LEVEL = 6  # of a run's report or summary, stored zlib-compressed


class HistoryError(Exception):
    """The store cannot be used: the message names the file and says why, in one line."""


class HistoryVersionError(HistoryError):
    """The store was written by a newer skyline-tui; it is left untouched."""


class StoreConnection:
    """One store file, opened on first use.  The file (and its folder) is created then unless
    ``create=False``, in which case a missing file is a :class:`HistoryError`.  Use as a context manager,
    or call :meth:`close`."""

    def __init__(self, path: StrPath, *, create: bool = True,
                 busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self._create = create
        self._busy_timeout_s = busy_timeout_s
        self._connection: sqlite3.Connection | None = None

    # -- opening --------------------------------------------------------------------------------------

    def __enter__(self: T) -> T:
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

    def _transaction(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """``write`` in one ``BEGIN IMMEDIATE`` transaction, committed, or rolled back on any error; again
        while the file is busy (see :meth:`_retrying`)."""
        connection = self._db()

        def attempt() -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = write(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return result

        return self._retrying(attempt)


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


def json_or_none(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def pandas_module(what: str) -> Any:
    try:
        import pandas  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError(f"{what} needs pandas: pip install 'skyline-tui[pandas]'") from None
    return pandas
