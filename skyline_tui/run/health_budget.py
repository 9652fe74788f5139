"""Which steps of a run sample per-layer health: every N (``--health-every N``), or, by default, as often as a
share of the run's time allows (``HEALTH_BUDGET``: the issue's goal is a run under skyline-tui at most 1.05x
the script alone).

The budget is kept in the script's process, from what sampling has cost so far: a sampled step's extra cost is
its wall time less the median of the recent steps that were not sampled (all of it while no such step has been
seen: the first sampled step is the first step after the model is known), plus the time the hooks spend on the
sample once the step is over (reading the publishers, judging the flags), measured directly.  A step is sampled
when that cost stays within the share of the time since health began.  The share may be overrun by one sample's
cost at most, and a health sample that costs more than the whole run's share is taken once, at the start.
Torch-free: plain arithmetic over ``perf_counter`` readings.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Optional

HEALTH_BUDGET = 0.05  # of the run's time, for per-layer health, when --health-every is not given
RECENT_PLAIN_STEPS = 25  # unsampled steps whose median stands for a step without health


class EveryN:
    """``--health-every N``: steps N, 2N, ...; whatever they cost."""

    def __init__(self, every: int):
        self.every = every

    def due(self, index: int, now: float) -> bool:
        return index % self.every == 0

    def step_closed(self, wall_s: float, sampled: bool, after_s: float) -> None:
        """A step closed (``sampled`` or not), and the hooks spent ``after_s`` on its sample since."""


class WithinBudget:
    """Sample while the time spent on health stays within ``share`` of the time since ``started``."""

    def __init__(self, share: float, started: float):
        self.share = share
        self.started = started
        self.spent_s = 0.0
        self.sampled = 0
        self._plain: deque[float] = deque(maxlen=RECENT_PLAIN_STEPS)

    def due(self, index: int, now: float) -> bool:
        return self.spent_s <= self.share * (now - self.started)

    def step_closed(self, wall_s: float, sampled: bool, after_s: float) -> None:
        if sampled:
            self.sampled += 1
            typical = statistics.median(self._plain) if self._plain else 0.0
            self.spent_s += max(0.0, wall_s - typical)
        else:
            self._plain.append(wall_s)
        self.spent_s += after_s



def schedule(every: Optional[int], budget: Optional[float], started: float) -> Optional[EveryN | WithinBudget]:
    """The schedule the options ask for: ``every`` wins; None when health is off (neither given)."""
    if every:
        return EveryN(every)
    if budget is not None:
        return WithinBudget(budget, started)
    return None
