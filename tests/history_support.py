"""Helpers for the history tests: reports made by hand (numbers chosen, not measured), so each figure a
test checks is independent of the code under test."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from skyline_tui.report import (
    Breakdown,
    DeviceInfo,
    LineTiming,
    MemoryBreakdown,
    ModuleTiming,
    Report,
    Throughput,
)


def make_report(root: Path, *, iteration_ms: float = 10.0, stdev: float = 0.1, batch_size: int = 8,
                lines: tuple[tuple[int, str, float], ...] = ((5, "x = a(x)", 3.0), (6, "x = b(x)", 2.0)),
                modules: tuple[tuple[str, float], ...] = (("", 5.0), ("fc", 4.0)),
                peak_bytes: int = 1_000_000, created_at: str | None = None,
                entry: str = "entry.py") -> Report:
    return Report(
        entry_point=str(root / entry), project_root=str(root), batch_size=batch_size,
        device=DeviceInfo(type="cpu", name="CPU (test)", memory_capacity_bytes=None), torch_version="2.x",
        throughput=Throughput(samples_per_second=batch_size * 1000 / iteration_ms, iteration_ms=iteration_ms,
                              iteration_ms_stdev=stdev, iterations_measured=10),
        breakdown=Breakdown(
            profiled_iteration_ms=iteration_ms, optimizer_ms=0.5, other_ms=0.0, iterations_profiled=1,
            lines=tuple(LineTiming(file=entry, line=n, code=code, forward_ms=ms / 2, backward_ms=ms / 2)
                        for n, code, ms in lines),
            modules=tuple(ModuleTiming(path=path, type="Linear", forward_ms=ms / 2, backward_ms=ms / 2,
                                       self_forward_ms=ms / 2, self_backward_ms=ms / 2) for path, ms in modules)),
        memory=MemoryBreakdown(peak_bytes=peak_bytes, peak_source="test", capacity_bytes=None, weights_bytes=0,
                               gradients_bytes=0, optimizer_state_bytes=0, activations_bytes=0,
                               other_bytes=peak_bytes),
        created_at=created_at or "2025-01-01T00:00:00Z",
    )


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def count_runs(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])


def run_verb(*argv: str) -> tuple[int, str, str]:
    """``skyline-tui ARGV`` in this process, through the real front door: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from skyline_tui.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()
