"""A training run's steps as rows of the store: one row a step, downsampled past ``MAX_STEP_ROWS``.

Past the limit, consecutive steps are merged into groups of equal size: times and samples are the group's
means, the loss the mean of its steps' finite losses (``Step.loss``), memory the group's largest reading;
``step`` is the group's last step and ``steps_merged`` its size.  The first and last steps always keep a row of
their own (the start and the end of the loss curve).  Torch-free.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional, Sequence

from skyline_tui.run.events import Step

MAX_STEP_ROWS = 5000

STEP_COLUMNS = ("step", "steps_merged", "end_s", "wall_ms", "forward_ms", "backward_ms", "optimizer_ms",
                "evaluation_ms", "other_ms", "samples", "loss", "losses_json", "allocated_bytes", "reserved_bytes",
                "peak_allocated_bytes", "rss_bytes")


def step_rows(steps: Sequence[Step], limit: int = MAX_STEP_ROWS) -> list[tuple[Any, ...]]:
    if len(steps) <= limit:
        return [_row([step]) for step in steps]
    middle = steps[1:-1]
    size = math.ceil(len(middle) / (limit - 2))
    groups = [list(middle[i:i + size]) for i in range(0, len(middle), size)]
    return [_row([steps[0]])] + [_row(group) for group in groups] + [_row([steps[-1]])]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _largest(values: list[Optional[int]]) -> Optional[int]:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _row(group: list[Step]) -> tuple[Any, ...]:
    last = group[-1]
    losses = [s.loss for s in group if s.loss is not None]
    samples = [s.samples for s in group if s.samples is not None]
    return (
        last.index, len(group), last.end_s, _mean([s.wall_ms for s in group]),
        _mean([s.forward_ms for s in group]), _mean([s.backward_ms for s in group]),
        _mean([s.optimizer_ms for s in group]), _mean([s.evaluation_ms for s in group]),
        _mean([s.other_ms for s in group]),
        round(_mean([float(v) for v in samples])) if samples else None,
        _mean(losses) if losses else None,
        json.dumps(list(last.losses)) if len(group) == 1 else None,
        _largest([s.allocated_bytes for s in group]), _largest([s.reserved_bytes for s in group]),
        _largest([s.peak_allocated_bytes for s in group]), _largest([s.rss_bytes for s in group]),
    )
