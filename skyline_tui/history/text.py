"""The store and its diffs as text: the table of ``skyline-tui history`` and the report of ``skyline-tui diff``
(which the app's diff screen shows too).

Neither imports textual nor torch: listing a store of 10,000 runs answers in well under half a second.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from skyline_tui.comparison.diff import Diff
from skyline_tui.comparison.train_diff import TrainDiff
from skyline_tui.history.labels import knob_labels
from skyline_tui.presentation import machine_notes
from skyline_tui.report import Throughput

# -- history --------------------------------------------------------------------------------------------

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

FLAG_MARKS = {"appeared": "+", "gone": "-"}
VERDICT_MARKS = {"slower": "▲", "faster": "▼", "same": "=", "unknown": "?", "new": "+", "gone": "-", "more": "▲",
                 "less": "▼", "higher": "▲", "lower": "▼"}


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


def train_diff_text(result: TrainDiff) -> str:
    """Two training runs, figure by figure: one row each, with its verdict."""
    a, b = result.a, result.b
    out = [f"A: {a.source}  {' '.join(a.argv) or a.script}  {a.created_at or ''}  ({result.steps[0]} steps)",
           f"B: {b.source}  {' '.join(b.argv) or b.script}  {b.created_at or ''}  ({result.steps[1]} steps)",
           f"noise band: {100 * result.noise_fraction:.1f} % of the larger median step (see README, 'history')", ""]
    def ms(value: float) -> str:
        return _number(value, 2) + " ms"

    def loss(value: float) -> str:
        return f"{value:.6g}"

    facts: list[tuple[str, dict[str, Any], Callable[[Any], str]]] = [
        ("samples/s", result.throughput, lambda v: _number(v, 1)), ("step median", result.step_median, ms),
        ("step p90", result.step_p90, ms)]
    facts += [(name, fact, ms) for name, fact in result.phases.items()]
    facts += [(name.replace("_", " "), fact, _bytes) for name, fact in result.memory.items()]
    facts.append(("final loss", result.final_loss, loss))
    rows = [("", "figure", "A", "B", "change", "verdict")]
    for name, fact, fmt in facts:
        before, after, verdict = fact["before"], fact["after"], fact["verdict"]
        percent = f"{fact['delta_percent']:+.1f} %" if fact["delta_percent"] is not None else ""
        rows.append((VERDICT_MARKS.get(verdict or "", " "), name, fmt(before) if before is not None else "-",
                     fmt(after) if after is not None else "-", percent, verdict or "-"))
    out += _columns(rows, right={2, 3, 4})
    out += [f"caution: {line}" for line in result.cautions]
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
