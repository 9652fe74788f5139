"""The headless progress line (stderr, every few seconds), fed real events, on a clock the test moves."""

from __future__ import annotations

import io

from skyline_tui.run import events as ev
from skyline_tui.run.headless import Progress
from skyline_tui.run.summary import SummaryBuilder


def step(index: int) -> ev.Step:
    return ev.Step(index=index, end_s=index * 0.1, wall_ms=100.0, forward_ms=40.0, backward_ms=50.0, optimizer_ms=5.0,
                   evaluation_ms=0.0, other_ms=5.0, samples=32, losses=(2.0,), loss=2.0, loss_terms=1)


def test_while_no_step_closes_the_line_says_how_long_the_next_has_run_instead_of_repeating_itself():
    """nanoGPT with --compile=True: its second step compiled for 5 s, and the line said "step 2 · 5345.0 ms/step"
    four times over."""
    now = [0.0]
    builder = SummaryBuilder("train.py", ())
    out = io.StringIO()
    progress = Progress(builder, out, every_s=5.0, clock=lambda: now[0])
    for t in (1.0, 5.0):
        now[0] = t
        progress.tick()  # no step yet: nothing to say
    builder(step(1))
    builder(step(2))
    for t in (10.0, 15.0, 20.0, 25.0):
        now[0] = t
        progress.tick()
    builder(step(3))
    now[0] = 30.0
    progress.tick()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("skyline-tui: step 2 · 100.0 ms/step · 320 samples/s · loss 2")
    assert lines[1:4] == [f"skyline-tui: step 3 running for at least {s} s" for s in (5, 10, 15)]
    assert lines[4].startswith("skyline-tui: step 3 · 100.0 ms/step")
    assert len(lines) == 5
