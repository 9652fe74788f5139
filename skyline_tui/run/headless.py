"""A run without a view: the events file, one progress line on stderr every few seconds, the summary at the end.

Torch-free and textual-free.  Everything the script prints is its own and passes through untouched; ours goes to
stderr as whole lines prefixed ``skyline-tui:``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Optional, TextIO

from skyline_tui.run import events as ev
from skyline_tui.run.summary import RunSummary, SummaryBuilder, loss_note

PROGRESS_EVERY_S = 5.0
RECENT_STEPS = 20


class EventsFile:
    """``--events PATH``: each event a line, flushed as it comes (a crash loses at most the line being written)."""

    def __init__(self, path: str):
        self._file: Optional[TextIO] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, event: ev.Event) -> None:
        if self._file is not None:
            self._file.write(ev.encode(event).decode("utf-8"))
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Progress:
    """One line every ``PROGRESS_EVERY_S``: the step, its recent time and rate, the loss, the memory; while no
    step closes (a compile, a long evaluation), how long the next one has been running instead of the same line."""

    def __init__(self, builder: SummaryBuilder, stream: TextIO, every_s: float = PROGRESS_EVERY_S,
                 clock: Any = time.monotonic):
        self._builder = builder
        self._stream = stream
        self._every = every_s
        self._clock = clock
        self._next = clock() + every_s
        self._seen = (0, clock())  # the steps at the last line, and since when

    def tick(self) -> None:
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._every
        steps = self._builder.steps
        if len(steps) != self._seen[0]:
            self._seen = (len(steps), now)
            line = progress_line(steps)
        elif steps:
            line = f"skyline-tui: step {steps[-1].index + 1} running for at least {now - self._seen[1]:.0f} s"
        else:
            line = None
        if line:
            self._stream.write(line + "\n")
            self._stream.flush()


def progress_line(steps: list[ev.Step]) -> Optional[str]:
    if not steps:
        return None
    recent = steps[-RECENT_STEPS:]
    wall = statistics.median(s.wall_ms for s in recent)
    parts = [f"step {steps[-1].index}", f"{wall:.1f} ms/step"]
    rates = [s.samples * 1e3 / s.wall_ms for s in recent if s.samples and s.wall_ms > 0]
    if rates:
        parts.append(f"{statistics.median(rates):,.0f} samples/s")
    loss = next((s.loss for s in reversed(recent) if s.loss is not None), None)
    if loss is not None:
        parts.append(f"loss {loss:.4g}")
    rss = next((s.rss_bytes for s in reversed(steps) if s.rss_bytes is not None), None)
    if rss is not None:
        parts.append(f"rss {rss / 2**20:,.0f} MiB")
    return "skyline-tui: " + " · ".join(parts)


def summary_text(summary: RunSummary) -> str:
    """The few lines printed at the end."""
    lines = [f"skyline-tui: {summary.script}: {summary.steps} steps, exit status {summary.exit_code}"]
    if summary.steps == 0 and summary.why_no_steps:
        lines.append(f"skyline-tui: no steps: {summary.why_no_steps}")
    step = summary.step_ms
    if step.median is not None:
        rate = f", {summary.samples_per_second:,.1f} samples/s" if summary.samples_per_second else ""
        lines.append(f"skyline-tui: step {step.median:.2f} ms median, {step.p90:.2f} ms p90{rate} "
                     f"(after {summary.warmup_steps} warm-up steps)")
        p = summary.phases_ms
        lines.append(f"skyline-tui: per step: forward {p.forward:.2f} ms, backward {p.backward:.2f} ms, "
                     f"optimizer {p.optimizer:.2f} ms, evaluation {p.evaluation or 0.0:.2f} ms, other {p.other:.2f} ms")
    if summary.samples_from is not None and summary.samples_from.override is None and summary.samples_from.module:
        s = summary.samples_from
        lines.append(f"skyline-tui: samples: dim {s.dim} of {s.tensor} of {s.module} (--samples-per-step to set)")
    elif summary.samples_from is None and summary.steps:
        lines.append("skyline-tui: samples: no nn.Module was called, so no samples/s and no forward time (its work "
                     "is in other; --samples-per-step to set the samples)")
    loss = summary.loss
    if loss.first is not None:
        note = loss_note(loss.passes_per_step, loss.terms_per_step)
        lines.append(f"skyline-tui: loss {loss.first:.4g} -> {loss.last:.4g} (min {loss.min:.4g}"
                     f"{'; ' + note if note else ''})")
    if loss.first_non_finite_step is not None:
        lines.append(f"skyline-tui: the loss was not finite first at step {loss.first_non_finite_step}")
    if summary.non_finite is not None:
        lines.append(f"skyline-tui: {summary.non_finite.message}")
    memory = summary.memory
    sizes = [f"{name} {value / 2**20:,.0f} MiB" for name, value in
             (("peak allocated", memory.peak_allocated), ("peak reserved", memory.peak_reserved),
              ("peak rss", memory.peak_rss)) if value is not None]
    if sizes:
        lines.append("skyline-tui: memory: " + ", ".join(sizes))
    if summary.health is not None:
        flagged = [row for row in summary.health.modules if row.flags]
        sampled = summary.health.iterations
        lines.append(f"skyline-tui: health: {sampled} sampled step{'' if sampled == 1 else 's'}, {len(flagged)} "
                     f"layer{'' if len(flagged) == 1 else 's'} flagged"
                     + "".join(f"\nskyline-tui:   {row.module or '(model)'}: {flag.message}"
                               for row in flagged for flag in row.flags))
    return "\n".join(lines)
