"""``skyline-tui history`` and ``skyline-tui diff``: the store from the command line.

Neither imports textual nor torch: listing a store of 10,000 runs answers in well under half a second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from skyline_tui.history.diff import Diff, diff_reports, label
from skyline_tui.history.labels import knob_labels
from skyline_tui.history.location import HISTORY_ENV, default_history_path
from skyline_tui.history.store import History, HistoryError
from skyline_tui.report import Report, ReportFormatError, Throughput, machine_notes

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
DEFAULT_LIMIT = 20  # the table; --json lists every run unless --limit says otherwise


class CommandError(Exception):
    """Bad input for a verb: the message is the one line the user sees."""


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


def _open(path: Path) -> History:
    if not path.is_file():
        raise CommandError(f"no history store at {path} (profile something first, or pass --history PATH)")
    return History(path, create=False)


# -- history --------------------------------------------------------------------------------------------

def history_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyline-tui history",
                                     description="List recorded profile runs, newest first.")
    parser.add_argument("entry", nargs="?", help="only the runs of this entry point")
    parser.add_argument("--history", metavar="PATH", help="the history store (default: the nearest "
                                                          ".skyline-tui/history.db, or $SKYLINE_TUI_HISTORY)")
    parser.add_argument("--limit", type=int, metavar="N", help=f"at most N runs (default: {DEFAULT_LIMIT} "
                                                               "in the table, all with --json; 0: all)")
    parser.add_argument("--json", action="store_true", help="print a JSON array of runs")
    return parser


JSON_FIELDS = ("id", "created_at", "entry_point", "project_root", "batch_size", "device", "torch_version",
               "samples_per_second", "iteration_ms", "iteration_ms_stdev", "peak_bytes", "error_kind", "status",
               "git_commit", "git_dirty", "source_hash", "sweep_id", "config", "knobs", "kind", "argv", "steps",
               "exit_code", "final_loss")


def history_main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = history_parser().parse_args(list(argv))
    limit = args.limit if args.limit is not None else (None if args.json else DEFAULT_LIMIT)
    try:
        with _open(find_store(args.history, args.entry)) as history:
            runs = history.runs(args.entry, limit=limit or None)
    except (CommandError, HistoryError) as exc:
        print(f"skyline-tui: {exc}", file=err)
        return EXIT_ERROR
    if args.json:
        out.write(json.dumps([{k: run[k] for k in JSON_FIELDS} for run in runs], indent=2) + "\n")
    else:
        out.write(history_table(runs))
    return EXIT_OK


def history_table(runs: list[dict[str, Any]]) -> str:
    header = ("id", "time (UTC)", "kind", "entry", "batch", "device", "samples/s", "iter ms", "peak", "status", "note")
    rows = [header] + [(
        str(run["id"]), (run["created_at"] or "")[:19].replace("T", " "), run.get("kind") or "profile",
        _short_path(run["entry_point"]),
        _text(run["batch_size"]), run["device"] or "-", _number(run["samples_per_second"], 1),
        _iteration(run["iteration_ms"], run["iteration_ms_stdev"]), _bytes(run["peak_bytes"]), run["status"],
        _note(run),
    ) for run in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {0, 4, 6, 7, 8}
    lines = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


# -- diff -----------------------------------------------------------------------------------------------

def diff_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyline-tui diff", description="What changed between two runs (A before, B after). A and B are run "
        "ids or report JSON files; with one, B is the newest run of A's entry point; with none, the last two "
        "runs of the newest entry point in the store.")
    parser.add_argument("runs", nargs="*", metavar="A|B", help="a run id or a report JSON file")
    parser.add_argument("--history", metavar="PATH", help="the history store (default: the nearest "
                                                          ".skyline-tui/history.db, or $SKYLINE_TUI_HISTORY)")
    parser.add_argument("--json", action="store_true", help="print the diff as JSON")
    return parser


def diff_main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = diff_parser()
    args = parser.parse_args(list(argv))
    if len(args.runs) > 2:
        parser.error("at most two runs (A and B)")
    try:
        result = resolve_diff(args.runs, args.history)
    except (CommandError, HistoryError) as exc:
        print(f"skyline-tui: {exc}", file=err)
        return EXIT_ERROR
    out.write(json.dumps(result.to_dict(), indent=2) + "\n" if args.json else diff_text(result))
    return EXIT_OK


def resolve_diff(specs: list[str], store: str | None) -> Diff:
    history: History | None = None

    def opened() -> History:
        nonlocal history
        if history is None:
            history = _open(find_store(store, None))
        return history

    try:
        sides = [_load_side(spec, opened) for spec in specs]
        if len(sides) < 2:
            entry: str | None
            if sides:
                entry = sides[0][0].entry_point
            else:  # the newest entry point in the store
                newest_run = opened().runs(limit=1)
                entry = newest_run[0]["entry_point"] if newest_run else None
            candidates = [run["id"] for run in opened().runs(entry, limit=3)]
            taken = {side[1].id for side in sides}
            ids = [run_id for run_id in candidates if run_id not in taken][: 2 - len(sides)]
            if len(ids) < 2 - len(sides):
                raise CommandError("the history has fewer than two runs to compare" +
                                   (f" for {entry}" if entry else ""))
            if sides:
                # One run given: compare it with the newest other run of its entry, in time order.
                newest = _load_side(str(ids[0]), opened)
                sides = [sides[0], newest] if (sides[0][1].id or 0) < ids[0] else [newest, sides[0]]
            else:
                sides = [_load_side(str(ids[1]), opened), _load_side(str(ids[0]), opened)]
        (a, label_a), (b, label_b) = sides
        return diff_reports(a, b, label_a, label_b)
    finally:
        if history is not None:
            history.close()


def _load_side(spec: str, opened: Any) -> tuple[Report, Any]:
    if spec.isdigit():
        report = opened().report(int(spec))
        return report, label(report, f"run {spec}", int(spec))
    try:
        with open(spec, encoding="utf-8") as fh:
            report = Report.from_json(fh.read())
    except OSError as exc:
        raise CommandError(f"cannot read {spec}: {exc.strerror or exc} (A and B are run ids or report files)") from None
    except ReportFormatError as exc:
        raise CommandError(f"{spec}: {exc}") from None
    return report, label(report, spec)


FLAG_MARKS = {"appeared": "+", "gone": "-"}
VERDICT_MARKS = {"slower": "▲", "faster": "▼", "same": "=", "new": "+", "gone": "-", "more": "▲", "less": "▼"}


def diff_text(result: Diff) -> str:
    a, b = result.a, result.b
    out = [f"A: {a.source}  {_short_path(a.entry_point)}  batch {_text(a.batch_size)}  {a.created_at or ''}",
           f"B: {b.source}  {_short_path(b.entry_point)}  batch {_text(b.batch_size)}  {b.created_at or ''}",
           f"noise band: {100 * result.noise_fraction:.1f} % of the larger time (see README, 'history')", ""]
    for name, fact, fmt in (("samples/s", result.throughput, lambda v: _number(v, 1)),
                            ("iteration", result.iteration, lambda v: _number(v, 2) + " ms"),
                            ("peak memory", result.peak, _bytes)):
        if fact["before"] is None or fact["after"] is None:
            out.append(f"{name:<12} {fmt(fact['before']) if fact['before'] is not None else '-':>12} -> "
                       f"{fmt(fact['after']) if fact['after'] is not None else '-'}")
            continue
        percent = f"{fact['delta_percent']:+.1f} %" if fact["delta_percent"] is not None else ""
        out.append(f"{name:<12} {fmt(fact['before']):>12} -> {fmt(fact['after']):>12}  {percent:>9}  {fact['verdict']}")
    out += [f"caution: {line}" for line in result.cautions]
    table = [("", "line", "before", "after", "delta", "verdict", "code")]
    table += [(VERDICT_MARKS[c.verdict], f"{c.file}:{c.line}", _ms(c.before_ms), _ms(c.after_ms), f"{c.delta_ms:+.2f}",
               c.verdict, c.code.strip()) for c in result.lines]
    modules = [("", "module", "before", "after", "delta", "verdict", "")]
    modules += [(VERDICT_MARKS[c.verdict], c.module or "(model)", _ms(c.before_ms), _ms(c.after_ms),
                 f"{c.delta_ms:+.2f}", c.verdict, "") for c in result.modules]
    for title, rows in (("lines (ms per iteration, forward + backward)", table), ("modules (ms)", modules)):
        if len(rows) > 1:
            out += ["", title, *_columns(rows, right={2, 3, 4})]
    if not result.lines and not result.modules:
        out += ["", "(no line or module breakdown in both runs)"]
    if result.flags:
        flags = [("", "module", "flag", "change", "")]
        flags += [(FLAG_MARKS[c.change], c.module or "(model)", c.kind, c.change, c.message) for c in result.flags]
        out += ["", "health flags", *_columns(flags, right=set())]
    return "\n".join(out) + "\n"


def _note(run: dict[str, Any]) -> str:
    """A sweep trial's knobs (but its batch size, which has a column), then why a run's times may be the
    machine's rather than the code's, by the report's own rules."""
    if run.get("kind") == "train":  # a supervised run: iter ms is its median step
        loss = run.get("final_loss")
        return ", ".join([f"{run.get('steps') or 0} steps"] + ([f"loss {loss:.4g}"] if loss is not None else []))
    return ", ".join(knob_labels(run.get("knobs")) + _machine_notes(run))


def _machine_notes(run: dict[str, Any]) -> list[str]:
    if run.get("iteration_ms") is None:
        return []
    throughput = Throughput(samples_per_second=run.get("samples_per_second") or 0.0, iteration_ms=run["iteration_ms"],
                            iteration_ms_stdev=run.get("iteration_ms_stdev") or 0.0,
                            iterations_measured=run.get("iterations_measured") or 0,
                            cpu_contention=run.get("cpu_contention"),
                            page_faults_per_iteration=run.get("page_faults_per_iteration"),
                            page_fault_ms=run.get("page_fault_ms"))
    return machine_notes(throughput)


def _columns(rows: Sequence[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    def line(row: tuple[str, ...]) -> str:
        cells = (cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        return "  ".join(cells).rstrip()

    return [line(row) for row in rows]


def _short_path(path: str) -> str:
    if not path:
        return "-"
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return relative if not relative.startswith("../..") else path


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _iteration(mean: float | None, stdev: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f}" + (f" ± {stdev:.2f}" if stdev is not None else "")


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(amount) < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"
