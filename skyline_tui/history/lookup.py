"""Finding what the ``history`` and ``diff`` verbs name: the store (``--history``, the environment, the
nearest one up from a folder) and the two runs of a diff (run ids, report files, or the newest runs; two
profiles, or two training runs, never one of each); and the drift a profile about to start will be judged
with (:func:`with_learned_drift`, for every front door that knows a store).

Torch-free and textual-free.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from skyline_tui.comparison.diff import Diff, diff_reports, label
from skyline_tui.comparison.drift import drift_before, drift_between
from skyline_tui.comparison.train_diff import TrainDiff, TrainRunLabel, diff_train_runs
from skyline_tui.config import ProfileConfig
from skyline_tui.history.connection import HistoryError
from skyline_tui.history.location import HISTORY_ENV, default_history_path
from skyline_tui.history.store import History
from skyline_tui.machine import cpu_name
from skyline_tui.report import Report, ReportFormatError


class LookupProblem(Exception):
    """No store, no such file, too few runs: the message is the one line the user sees."""


def find_store(cli_path: str | None, start: str | None) -> Path:
    """``--history PATH``, else ``$SKYLINE_TUI_HISTORY``, else the nearest ``.skyline-tui/history.db`` in
    ``start`` (an entry point's folder, or the current folder) or a folder above it (a ``--root`` may
    have put the store higher up)."""
    if cli_path:
        return Path(cli_path).expanduser()
    from_env = os.environ.get(HISTORY_ENV, "").strip()
    if from_env and from_env.lower() not in ("off", "none", "0", "no"):
        return Path(from_env).expanduser()
    folder = Path(start or os.getcwd()).resolve()
    if folder.is_file():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        if default_history_path(candidate).is_file():
            return default_history_path(candidate)
    return default_history_path(folder)


def open_store(path: Path) -> History:
    if not path.is_file():
        raise LookupProblem(f"no history store at {path} (profile something first, or pass --history PATH)")
    return History(path, create=False)


def with_learned_drift(config: ProfileConfig, store: str | os.PathLike[str] | None, entry: str) -> ProfileConfig:
    """``config`` with the drift between processes the store at ``store`` learned for ``entry`` on this
    machine's CPU (``drift_sigma``, ``drift_device``: where each batch size is measured in a process of its
    own, which is on CPU, the predictions judge their points against it).  Read only: no store (None, or no
    file there), one that cannot be read, or nothing learned yet leaves ``config`` as it is (the drift
    unknown); so does a ``config`` that already names a drift."""
    if config.drift_sigma is not None:
        return config
    return with_drift(config, *learned_drift(store, entry))


def with_drift(config: ProfileConfig, sigma: float | None, device: str | None) -> ProfileConfig:
    """``config`` judging with the drift ``sigma`` learned on ``device``; as it is when nothing was learned or it
    names a drift of its own."""
    if sigma is None or config.drift_sigma is not None:
        return config
    return config.replace(drift_sigma=sigma, drift_device=device)


def learned_drift(store: str | os.PathLike[str] | None, entry: str) -> tuple[float | None, str | None]:
    """The drift's sigma the store at ``store`` learned for ``entry`` on this machine's CPU, and that CPU's name;
    (None, None) without a store, the sigma None where the store cannot be read or has learned nothing yet."""
    if store is None or not os.path.isfile(store):
        return None, None
    device = cpu_name()
    try:
        with History(store, create=False) as history:
            drift = drift_before(history, str(Path(entry).expanduser().resolve()), device)
    except (HistoryError, sqlite3.Error, OSError):  # recording the run will say what is wrong with the store
        return None, device
    return drift.sigma, device


class KindMismatch(LookupProblem):
    """A profile and a training run named together: nothing to compare them by."""


def resolve_diff(specs: list[str], store: str | None) -> Diff | TrainDiff:
    """The diff of the runs ``specs`` names (run ids or report files; see the ``diff`` verb): two profiles line
    by line, or two training runs figure by figure.  A profile and a training run: :class:`KindMismatch`."""
    history: History | None = None

    def opened() -> History:
        nonlocal history
        if history is None:
            history = open_store(find_store(store, None))
        return history

    try:
        files = {spec: _load_side(spec, opened) for spec in specs if not spec.isdigit()}  # a bad file first
        kinds = [opened().kind(int(spec)) if spec.isdigit() else "profile" for spec in specs]
        if len(set(kinds)) > 1:
            profile, train = (specs[kinds.index(kind)] for kind in ("profile", "train"))
            raise KindMismatch(f"{_named(profile)} is a profile and run {train} a training run: diff compares two "
                               "profiles, or two training runs")
        if kinds and kinds[0] == "train" or not specs and _newest_kind(opened) == "train":
            return _diff_train_runs([int(spec) for spec in specs], opened)
        sides = [files.get(spec) or _load_side(spec, opened) for spec in specs]
        if len(sides) < 2:
            entry: str | None
            if sides:
                entry = sides[0][0].entry_point
            else:  # the newest entry point in the store
                newest_run = opened().runs(limit=1)
                entry = newest_run[0]["entry_point"] if newest_run else None
            candidates = [run["id"] for run in opened().runs(entry, limit=3, kind="profile")]
            taken = {side[1].id for side in sides}
            ids = [run_id for run_id in candidates if run_id not in taken][: 2 - len(sides)]
            if len(ids) < 2 - len(sides):
                raise LookupProblem("the history has fewer than two runs to compare" +
                                   (f" for {entry}" if entry else ""))
            if sides:
                # One run given: compare it with the newest other run of its entry, in time order.
                newest = _load_side(str(ids[0]), opened)
                sides = [sides[0], newest] if (sides[0][1].id or 0) < ids[0] else [newest, sides[0]]
            else:
                sides = [_load_side(str(ids[1]), opened), _load_side(str(ids[0]), opened)]
        (a, label_a), (b, label_b) = sides
        # Two runs of the store: the drift between their processes is learned there (two files: unknown).
        both_stored = label_a.id is not None and label_b.id is not None
        drift = drift_between(opened(), label_a.id, label_b.id) if both_stored else None
        return diff_reports(a, b, label_a, label_b, drift=drift)
    finally:
        if history is not None:
            history.close()


def _named(spec: str) -> str:
    return f"run {spec}" if spec.isdigit() else spec


def _newest_kind(opened: Any) -> str | None:
    newest = opened().runs(limit=1)
    return str(newest[0]["kind"]) if newest else None


def _diff_train_runs(ids: list[int], opened: Any) -> TrainDiff:
    """Two training runs: the ones given, else the newest other training run(s) of the same script."""
    rows = {row["id"]: row for row in opened().runs(kind="train")}
    if len(ids) < 2:
        entry = rows[ids[0]]["entry_point"] if ids else next(iter(rows.values()))["entry_point"]
        others = [run_id for run_id, row in rows.items() if row["entry_point"] == entry and run_id not in ids]
        if len(others) < 2 - len(ids):
            raise LookupProblem(f"the history has fewer than two training runs to compare for {entry}")
        ids = sorted([*ids, *others[: 2 - len(ids)]])
    summaries = [opened().summary(run_id) for run_id in ids]
    labels = [TrainRunLabel(source=f"run {run_id}", script=summary.script, argv=summary.argv,
                            created_at=rows[run_id]["created_at"], id=run_id)
              for run_id, summary in zip(ids, summaries)]
    return diff_train_runs(summaries[0], summaries[1], labels[0], labels[1],
                           drift=drift_between(opened(), ids[0], ids[1]))


def _load_side(spec: str, opened: Any) -> tuple[Report, Any]:
    if spec.isdigit():
        report = opened().report(int(spec))
        return report, label(report, f"run {spec}", int(spec))
    try:
        with open(spec, encoding="utf-8") as fh:
            report = Report.from_json(fh.read())
    except OSError as exc:
        raise LookupProblem(f"cannot read {spec}: {exc.strerror or exc} "
                            "(A and B are run ids or report files)") from None
    except ReportFormatError as exc:
        raise LookupProblem(f"{spec}: {exc}") from None
    return report, label(report, spec)
