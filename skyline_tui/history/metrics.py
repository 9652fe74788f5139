"""The metrics a script logged with ``track.log``: rows ``(run_id, step, name, value)`` in the store's
``metrics`` table, and back as a DataFrame with a step column and one column per metric.

Plain functions over an open connection; :class:`~skyline_tui.history.store.History` calls them inside its
own transactions and retries.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any, Iterable

INSERT = "INSERT INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)"


def insert_metrics(connection: sqlite3.Connection, run_id: int,
                   records: Iterable[tuple[int, str, float]]) -> None:
    # SQLite stores a NaN as NULL; it is read back as NaN (a logged NaN is a result, not a missing value).
    connection.executemany(INSERT, [(run_id, step, name, value) for step, name, value in records])


def metric_rows(connection: sqlite3.Connection, run_id: int) -> list[tuple[int, str, float]]:
    rows = connection.execute("SELECT step, name, value FROM metrics WHERE run_id = ? ORDER BY rowid",
                              (run_id,)).fetchall()
    return [(int(step), str(name), math.nan if value is None else float(value)) for step, name, value in rows]


def metric_columns(connection: sqlite3.Connection, run_ids: list[int]) -> dict[int, dict[str, float]]:
    """Per run, ``metrics.NAME.final`` (the value at the highest step), ``metrics.NAME.min`` and
    ``metrics.NAME.max`` of each metric it logged: the columns ``History.dataframe()`` adds.  Which of min
    and max is a metric's best is the metric's own sense (a loss's min, an accuracy's max)."""
    by_run: dict[int, list[tuple[int, str, float]]] = {}
    for start in range(0, len(run_ids), 500):  # SQLite's limit on bound parameters
        chunk = run_ids[start:start + 500]
        rows = connection.execute(
            f"SELECT run_id, step, name, value FROM metrics WHERE run_id IN ({', '.join('?' * len(chunk))}) "
            "ORDER BY rowid", chunk).fetchall()
        for run_id, step, name, value in rows:
            by_run.setdefault(int(run_id), []).append((int(step), str(name),
                                                       math.nan if value is None else float(value)))
    columns: dict[int, dict[str, float]] = {}
    for run_id, records in by_run.items():
        flat = columns.setdefault(run_id, {})
        for name, summary in summarise(records).items():
            flat[f"metrics.{name}.final"] = summary["last"]
            flat[f"metrics.{name}.min"] = summary["min"]
            flat[f"metrics.{name}.max"] = summary["max"]
    return columns


def metrics_frame(rows: list[tuple[int, str, float]]) -> Any:
    """One row per step, one column per metric (in the order first logged); a metric not logged at a
    step is NaN there.  Logged twice at one step, the later value stands (as in the script's own dict)."""
    try:
        import pandas  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError("History.metrics() needs pandas: pip install 'skyline-tui[pandas]'") from None
    names: dict[str, None] = {}
    by_step: dict[int, dict[str, float]] = {}
    for step, name, value in rows:
        names.setdefault(name, None)
        by_step.setdefault(step, {})[name] = value
    steps = sorted(by_step)
    columns: dict[str, list[Any]] = {"step": list(steps)}
    for name in names:
        columns[name] = [by_step[step].get(name, math.nan) for step in steps]
    return pandas.DataFrame(columns, columns=["step", *names])


def summarise(rows: list[tuple[int, str, float]]) -> dict[str, dict[str, float]]:
    """Per metric: ``last`` (the value at the highest step, the later one on a tie), ``min`` and ``max``
    (NaNs left out; NaN when every value is NaN)."""
    out: dict[str, dict[str, Any]] = {}
    for step, name, value in rows:
        entry = out.setdefault(name, {"last_step": step, "last": value, "min": math.nan, "max": math.nan})
        if step >= entry["last_step"]:
            entry["last_step"], entry["last"] = step, value
        if not math.isnan(value):
            entry["min"] = value if math.isnan(entry["min"]) else min(entry["min"], value)
            entry["max"] = value if math.isnan(entry["max"]) else max(entry["max"], value)
    return {name: {"last": e["last"], "min": e["min"], "max": e["max"]} for name, e in out.items()}
