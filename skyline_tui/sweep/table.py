"""The sweep on the terminal (Rich, never Textual): a live table while it runs, the ranking at the end."""

from __future__ import annotations

from typing import Any, Optional

from rich.console import Group
from rich.table import Table
from rich.text import Text

from skyline_tui.presentation import machine_notes
from skyline_tui.sweep.results import Trial, TrialResult, pareto_flags


def format_knobs(knobs: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in knobs.items())


def format_bytes(value: Optional[int]) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def format_rate(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.1f}"


class SweepProgress:
    """What the live table shows; the command updates it from the backend's callbacks."""

    def __init__(self, total: int, where: str):
        self.total = total
        self.where = where
        self.running: dict[int, Trial] = {}
        self.results: list[TrialResult] = []

    def started(self, trial: Trial) -> None:
        """Locally: the trial is being measured.  On Ray: it is queued on the cluster (Ray decides when it
        starts), hence "in flight" rather than "running"."""
        self.running[trial.index] = trial

    def finished(self, result: TrialResult) -> None:
        self.running.pop(result.trial.index, None)
        self.results.append(result)

    @property
    def failures(self) -> int:
        return sum(not r.ok for r in self.results)

    def best(self) -> Optional[TrialResult]:
        good = [r for r in self.results if r.ok]
        return max(good, key=lambda r: r.samples_per_second or 0.0) if good else None

    def __rich__(self) -> Group:
        done = len(self.results)
        head = Text(f"sweep on {self.where}: {done}/{self.total} done, {self.failures} failed, "
                    f"{len(self.running)} in flight")
        best = self.best()
        lines: list[Any] = [head]
        if best is not None:
            lines.append(Text(f"best so far: {format_rate(best.samples_per_second)} samples/s, peak "
                              f"{format_bytes(best.peak_bytes)}  ({format_knobs(best.trial.knobs)})"))
        for trial in self.running.values():
            lines.append(Text(f"  in flight #{trial.index + 1}: {format_knobs(trial.knobs)}", style="dim"))
        return Group(*lines)


def final_table(results: list[TrialResult]) -> Table:
    """Successful trials by samples/s (fastest first), then the failed ones with their error kind.
    ``*`` marks the Pareto-optimal trials: no other trial is both faster and smaller in peak memory."""
    flags = dict(zip((id(r) for r in results), pareto_flags(results), strict=True))
    table = Table(title="sweep results (* = Pareto-optimal: no trial both faster and smaller)")
    # torch.compile's first iteration, kept out of samples/s: its own column when a trial compiled.
    compiled = any(r.report.compile_ms is not None for r in results)
    # Why a trial's times may be the machine's (a busy CPU, page faults): its own column when any has one.
    notes = {id(r): ", ".join(machine_notes(r.report.throughput)) for r in results}
    noted = any(notes.values())
    columns = [("#", "right"), ("", "left"), ("knobs", "left"), ("samples/s", "right"), ("iteration ms", "right"),
               ("peak memory", "right"), *([("compile ms", "right")] if compiled else []),
               *([("note", "left")] if noted else []), ("error", "left")]
    for column, justify in columns:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    good = sorted((r for r in results if r.ok), key=lambda r: -(r.samples_per_second or 0.0))
    bad = sorted((r for r in results if not r.ok), key=lambda r: r.trial.index)
    for result in good + bad:
        error = result.error
        compile_ms = result.report.compile_ms
        cells = [str(result.trial.index + 1), "*" if flags[id(result)] else "", format_knobs(result.trial.knobs),
                 format_rate(result.samples_per_second),
                 "-" if result.iteration_ms is None else f"{result.iteration_ms:.2f}", format_bytes(result.peak_bytes)]
        if compiled:
            cells.append("-" if compile_ms is None else f"{compile_ms:,.0f}")
        if noted:
            cells.append(notes[id(result)])
        cells.append("" if error is None else f"{error.kind}: {error.message}")
        table.add_row(*cells)
    return table
