"""``track.log`` under ``skyline-tui run``: batches go over the run's event stream, as ``Metrics`` events,
in order with the step events, and the launcher records them with the run.

Installed by the run's child before the script's first line (:func:`install`).  A step not given to
``track.log`` is the run's own count of closed steps (1 after the first ``optimizer.step()``), so a metric
logged right after a step lines up with that step's record.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

from skyline_tui.track.recorder import TRACKER
from skyline_tui.track.values import Record

# Batches leave at least this often, so the live view and a sweep's table see the metrics as they come.
MAX_DELAY_S = 0.25


class RunStreamSink:
    """Writes each batch as one ``Metrics`` line through ``write_line`` (the run's Sender, in order with the
    step lines it holds)."""

    def __init__(self, write_line: Callable[[bytes], None]) -> None:
        self._write_line = write_line

    def write(self, records: list[Record]) -> None:
        from skyline_tui.run.events import metrics_line

        self._write_line(metrics_line([r[0] for r in records], [r[1] for r in records],
                                      [r[2] if math.isfinite(r[2]) else None for r in records]))

    def close(self) -> None:
        pass  # the pipe is the run's to close


def install(write_line: Callable[[bytes], None], current_step: Optional[Callable[[], Optional[int]]] = None) -> None:
    TRACKER.use_sink(lambda: RunStreamSink(write_line), current_step=current_step, max_delay_s=MAX_DELAY_S)


def records_of(event: Any) -> list[tuple[int, str, float]]:
    """A ``Metrics`` event's records, a ``None`` value back as NaN (the store keeps it as NULL)."""
    return [(step, name, math.nan if value is None else float(value))
            for step, name, value in zip(event.steps, event.names, event.values, strict=True)]
