"""A custom autograd.Function's forward is charged to the line that applies it: its own Python (here a
known pause) on that line, the torch calls inside it once (on their own lines when the Function is project
code, on the apply line when it is a library's), never twice.

The breakdowns are timed on the thread's CPU clock (``breakdown_cpu_clock``), the clock the pauses spin on and
the plain loops are timed on, with one intra-op thread: a loaded machine stretches wall-clock times by 2-10x in
bursts, but not a thread's CPU time, so the bounds below hold on a quiet and a busy machine alike."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pytest
import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.breakdown import measure_breakdown
from skyline_tui.report import Breakdown, LineTiming

from .test_breakdown import FIXTURES, line_of, workload

CUSTOM_FORWARD = FIXTURES / "custom_forward"
SLEEPS = CUSTOM_FORWARD / "sleeps_entry.py"
MATMULS = CUSTOM_FORWARD / "matmul_entry.py"


def rows_of(breakdown: Breakdown, entry: Path) -> dict[str, LineTiming]:
    """Rows of ``entry`` by the marker comment on their line (a line without a row reads as zero)."""
    rows = {r.line: r for r in breakdown.lines if r.file == entry.name}
    markers = [text.split("# ")[-1] for text in entry.read_text().splitlines() if text.rstrip().endswith("_LINE")]
    return {marker: rows.get(line_of(entry, f"# {marker}"), LineTiming(entry.name, 0, "", 0.0, 0.0))
            for marker in markers}


def test_a_custom_forward_s_own_python_is_its_apply_line_s_forward_and_its_backward_that_line_s_backward(
        breakdown_cpu_clock):
    breakdown = measure_breakdown(workload(SLEEPS), ProfileConfig.quick(breakdown_iterations=3))
    fixture = sys.modules["__skyline_entry__"]
    forward_ms, backward_ms = 1000 * fixture.FORWARD_PAUSE_S, 1000 * fixture.BACKWARD_PAUSE_S
    rows = rows_of(breakdown, SLEEPS)
    print({k: (round(r.forward_ms, 2), round(r.backward_ms, 2)) for k, r in rows.items()},
          f"other {breakdown.other_ms:.2f} ms of {breakdown.profiled_iteration_ms:.2f} ms")
    applied, inner = rows["APPLY_LINE"], rows["INNER_LINE"]
    # Each pause is its CPU time, plus at most the line's tiny torch work (x * 2.0, grad * 2.0, a few
    # microseconds) and the instruments' own: a pause counted twice, or half of it missing, cannot pass.
    assert forward_ms <= applied.forward_ms < forward_ms + 2, breakdown.lines
    assert backward_ms <= applied.backward_ms < backward_ms + 2, breakdown.lines
    assert inner.forward_ms < 2  # the x * 2.0 inside keeps its own (tiny) row, not the pause
    assert breakdown.other_ms < forward_ms, breakdown
    attributed = sum(r.total_ms for r in breakdown.lines) + breakdown.optimizer_ms
    assert attributed <= breakdown.profiled_iteration_ms


def plain_matmuls_ms(repeats: int) -> list[float]:
    """The fixture's forward matmuls (one Function's worth) in a plain loop, no instruments: ms of this thread's
    CPU time per run (the clock the breakdown is timed on here)."""
    fixture = sys.modules["__skyline_entry__"]
    x = torch.randn(fixture.ROWS, fixture.WIDTH)
    w = torch.linalg.qr(torch.randn(fixture.WIDTH, fixture.WIDTH))[0]
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            started = time.thread_time_ns()
            h = x
            for _ in range(fixture.MATMULS):
                h = h @ w
            times.append((time.thread_time_ns() - started) / 1e6)
    return times


def test_torch_calls_inside_a_custom_forward_are_charged_once(breakdown_cpu_clock):
    work = workload(MATMULS)
    plain = plain_matmuls_ms(5)
    breakdown = measure_breakdown(work, ProfileConfig.quick(breakdown_iterations=5))
    plain += plain_matmuls_ms(5)  # before and after: the machine's speed drifts
    plain_ms = statistics.mean(plain)  # the statistic the breakdown reports (a mean over iterations)
    rows = rows_of(breakdown, MATMULS)
    print(f"plain loop mean {plain_ms:.2f} ms;", {k: (round(r.forward_ms, 2), round(r.backward_ms, 2))
                                                     for k, r in rows.items()})
    project_apply, project_matmul = rows["PROJECT_APPLY_LINE"], rows["PROJECT_MATMUL_LINE"]
    library_apply = rows["LIBRARY_APPLY_LINE"]
    # Project code: the matmuls stay on their own line, the apply line keeps only the Function's own
    # Python around them; together they are the matmuls' time once (twice would be ~2x the plain loop).
    assert project_matmul.forward_ms > 4 * project_apply.forward_ms, breakdown.lines
    assert project_apply.forward_ms + project_matmul.forward_ms < 1.5 * plain_ms, (plain, breakdown.lines)
    # A library's Function: the matmuls have no project line but the apply's, so all of it lands there,
    # once.  It is the same work as the project Function's, measured in the same iterations.
    assert library_apply.forward_ms < 1.5 * plain_ms, (plain, breakdown.lines)
    assert 0.5 < library_apply.forward_ms / project_matmul.forward_ms < 2.0, breakdown.lines
    attributed = sum(r.total_ms for r in breakdown.lines) + breakdown.optimizer_ms
    assert attributed <= breakdown.profiled_iteration_ms


def test_the_trace_nests_a_library_apply_s_matmuls_inside_its_span_and_its_self_time_is_the_row(tmp_path):
    import json

    import skyline_tui

    from ..report.test_trace import assert_nested_per_thread

    path = tmp_path / "trace.json"
    report = skyline_tui.profile(str(MATMULS), config=ProfileConfig.quick(breakdown_iterations=1), memory=False,
                                 predictions=False, trace=str(path))
    assert report.error is None and report.breakdown is not None, report.error
    complete = [e for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]
    assert_nested_per_thread(complete)
    library_line = line_of(MATMULS, "# LIBRARY_APPLY_LINE")
    forwards = [e for e in complete if e["cat"] == "forward" and e.get("args", {}).get("line") == library_line]

    def holds(outer: dict, inner: dict) -> bool:
        return outer is not inner and outer["ts"] <= inner["ts"] and \
            inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"] + 1e-3

    (apply_span,) = [e for e in forwards if any(holds(e, other) for other in forwards)]
    matmuls = 4  # library_kernels.MATMULS (the run was in the worker: its modules are not here)
    assert sum(holds(apply_span, e) for e in forwards) == matmuls  # its matmuls, inside it
    # Spans carry durations with their children (as a module's does); the breakdown charges each line
    # its spans' self time, so the matmuls are counted once.
    self_ms = sum(e["dur"] for e in forwards if e is not apply_span) / 1000 + \
        (apply_span["dur"] - sum(e["dur"] for e in forwards if holds(apply_span, e))) / 1000
    (row,) = [r for r in report.breakdown.lines if (r.file, r.line) == (MATMULS.name, library_line)]
    assert self_ms == pytest.approx(row.forward_ms, rel=0.10, abs=1e-3)
    assert apply_span["dur"] / 1000 < 1.1 * row.forward_ms  # not the matmuls again on top
