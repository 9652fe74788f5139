"""The drift between processes, learned from the history store: repeated runs of identical source.

Two runs of one entry point on one machine (the ``device`` the store names) with the same ``source_hash``,
config (less :data:`JUDGING_ONLY`) and batch size (training runs: the same script, ``argv`` and ``source_hash``;
their median step stands for the iteration) ran the same code the same way: what separates their times is this
machine's run-to-run noise.  Over every such group of the entry's runs, each run's time relative to its
group's mean, pooled (``Σ (ms/mean − 1)² / Σ (n − 1)``), is the drift's variance: :class:`Drift` ``.sigma``
is its square root.  Unknown until some source has run twice.

A profile about to start is judged with :func:`drift_before` (the front doors look it up through
``history.lookup.with_learned_drift`` and pass it in ``ProfileConfig.drift_sigma``: the batch-size predictions
measure each batch in a process of its own on CPU).  Pure over the store's run rows (``History.runs()`` dicts):
the store itself stays in ``history/``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from skyline_tui.comparison.rule import UNKNOWN_DRIFT_RATIO, Drift

Row = Mapping[str, Any]
DRIFT_WINDOW = 1000  # the newest runs of the store the drift is learned from
# Config keys that say how a run is judged, not how its code runs: two runs that differ only there ran the same
# way (ProfileConfig.drift_sigma is this very drift, as learned before the run).
JUDGING_ONLY = frozenset({"drift_sigma", "drift_device"})


class RunsSource(Protocol):
    """What the drift is read from: ``skyline_tui.history.History`` (its ``runs``)."""

    def runs(self, entry: str | None = None, limit: int | None = None) -> list[dict[str, Any]]: ...


def identity(row: Row) -> tuple[Any, ...] | None:
    """What makes two runs "the same code, run the same way": None when the source is unknown (no hash).  A
    training run is run the same way with the same arguments (``argv``: a profile has none)."""
    if not row.get("source_hash"):
        return None
    config = row.get("config")
    if isinstance(config, Mapping):
        config = {key: value for key, value in config.items() if key not in JUDGING_ONLY}
    return (row.get("kind") or "profile", row.get("source_hash"), json.dumps(config, sort_keys=True, default=str),
            row.get("batch_size"), json.dumps(row.get("argv")))


def same_source(a: Row, b: Row) -> bool:
    """Both runs ran the same source and config, at the same batch size, on the same machine."""
    key = identity(a)
    return key is not None and key == identity(b) and a.get("device") == b.get("device")


def learn_drift(rows: Iterable[Row], device: str | None, figure: str = "iteration_ms") -> Drift:
    """The drift of ``figure`` (a positive number each row holds: the iteration time, or what a training
    run's rows record) among ``rows`` (one entry point's runs) measured on ``device``; failed runs left out."""
    groups: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for row in rows:
        key = identity(row)
        value = row.get(figure)
        if key is None or row.get("device") != device or row.get("error_kind") is not None or not value or value <= 0:
            continue
        groups[key].append(float(value))
    repeated = [values for values in groups.values() if len(values) >= 2]
    if not repeated:
        return Drift(sigma=None)
    squares = 0.0
    degrees = 0
    for values in repeated:
        mean = math.fsum(values) / len(values)
        squares += math.fsum((value / mean - 1.0) ** 2 for value in values)
        degrees += len(values) - 1
    return Drift(sigma=math.sqrt(squares / degrees), runs=sum(len(t) for t in repeated), groups=len(repeated))


def drift_between(history: RunsSource, a_id: int | None, b_id: int | None) -> Drift:
    """The drift for comparing runs ``a_id`` and ``b_id`` of the store (either may be None: a run not
    recorded): learned from the runs of the later run's entry point on its machine among the store's newest
    :data:`DRIFT_WINDOW` (this machine as it is now, and a bounded read of a store of 10,000 runs), and
    whether the two ran the same source and config."""
    rows = history.runs(None, limit=DRIFT_WINDOW)
    by_id = {row["id"]: row for row in rows}
    if any(run_id is not None and run_id not in by_id for run_id in (a_id, b_id)):
        by_id = {row["id"]: row for row in history.runs(None)}  # an older run: read them all
    a, b = by_id.get(a_id), by_id.get(b_id)
    known = b or a
    if known is None:
        return Drift(sigma=None)
    learned = _learned(rows, known["entry_point"], known.get("device"))
    if a is not None and b is not None and same_source(a, b):
        return Drift(learned.sigma, learned.runs, learned.groups, same_source=True)
    return learned


def drift_before(history: RunsSource, entry_point: str, device: str | None) -> Drift:
    """The drift a run of ``entry_point`` (as the store keeps it: absolute) about to start on ``device`` will
    be judged with: learned as :func:`drift_between` learns it, from the same newest runs."""
    return _learned(history.runs(None, limit=DRIFT_WINDOW), entry_point, device)


def _learned(rows: Iterable[Row], entry_point: str, device: str | None) -> Drift:
    return learn_drift((row for row in rows if row["entry_point"] == entry_point), device)


def describe(drift: Drift) -> str:
    """The drift in words, for a diff's header and a failure line."""
    if drift.sigma is None:
        return ("drift between processes unknown (no source has been profiled twice here yet): a change "
                f"of less than {UNKNOWN_DRIFT_RATIO:g}x reads 'unknown'")
    return (f"drift between processes ±{100 * drift.sigma:.1f} % (from {drift.runs} runs of identical source "
            "on this machine)")

