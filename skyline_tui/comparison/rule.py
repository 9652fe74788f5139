"""The one noise rule: when two measurements of one quantity differ by more than noise.

Each measurement has a spread: the standard deviation of its own rounds, plus the drift between processes
when the two were measured in different processes (two profiles, two batch sizes each in a process of its
own).  A run's own spread does not include that drift: the unchanged mlp sample, profiled twice 4 s apart,
read 2.65 and 3.79 ms with spreads of a few hundredths of a millisecond each.  The drift is learned from
repeated runs of identical source in the history store (:mod:`skyline_tui.comparison.drift`) and comes in
as a :class:`Drift`.

A change is real when it exceeds ``NOISE_SIGMAS`` times the two spreads added together (each run's own
standard deviation plus ``drift.sigma`` times its value) and the allowance the caller sets (``diff``'s
:data:`MIN_NOISE_FRACTION`, ``--baseline``'s ``--max-regression``, the predictions' line tolerance).  Then:

- ``same`` within that band, and always when both runs ran the same source and config (their difference
  *is* this machine's run-to-run noise);
- ``unknown`` beyond the band when the drift is unknown (the store holds no repeated runs of identical
  source yet) and the two values are less than :data:`UNKNOWN_DRIFT_RATIO` apart: drift alone has moved
  unchanged code that far here, so the rule does not claim a direction;
- else the direction (``slower``/``faster``, ``more``/``less``).

``drift=None`` means nobody looked (two report files, a direct call): the spreads and the allowance alone,
as before the store knew about drift.  Torch-free and textual-free: the ``diff`` verb, ``--baseline``, the
app's Δ and the batch-size predictions use it, and so can comparisons of training runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

NOISE_SIGMAS = 2.0  # a change beyond two standard deviations of the two measurements together
# Repeated runs of one unchanged model on these machines drift by a few percent even when each run's own
# spread is tiny, so ``diff`` calls no change below this fraction real.
MIN_NOISE_FRACTION = 0.05
MIN_NOISE_MS = 0.02  # below timer and instrumentation resolution for a single line
PEAK_NOISE_FRACTION = 0.01  # peak memory is nearly deterministic; allocator rounding moves it a little
# With the drift unknown, two values this far apart (a ratio) are a change whatever the drift: fresh
# processes of one batch size ran up to 2x apart at small batches on these machines (DESIGN.md's facts).
UNKNOWN_DRIFT_RATIO = 2.0

SAME, UNKNOWN = "same", "unknown"


@dataclass(frozen=True)
class Drift:
    """How far apart separate processes of identical source and config run on this machine.

    ``sigma`` is the relative standard deviation of one run's time around the mean of its repeats (0.1: a
    run lands within ±10 % of the others about two times in three); ``None`` when unknown.  ``runs`` and
    ``groups`` say what it was learned from (runs of identical source, in groups of one source each).
    ``same_source``: the two runs compared ran the same source and config."""

    sigma: float | None
    runs: int = 0
    groups: int = 0
    same_source: bool = False

    @property
    def known(self) -> bool:
        return self.sigma is not None


IN_ONE_PROCESS = Drift(sigma=0.0)  # measured in one process: no drift between them


def spread(value: float, own_stdev: float, drift: Drift | None) -> float:
    """One measurement's standard deviation: its own rounds', plus the drift between processes (known)."""
    sigma = drift.sigma if drift is not None and drift.sigma is not None else 0.0
    return own_stdev + sigma * abs(value)


def noise(before: float, after: float, before_stdev: float, after_stdev: float, drift: Drift | None) -> float:
    """The difference the two measurements' spreads allow: ``NOISE_SIGMAS`` times their spreads added."""
    return NOISE_SIGMAS * (spread(before, before_stdev, drift) + spread(after, after_stdev, drift))


def relative_noise(measured: Iterable[tuple[float, float]], drift: Drift | None, floor: float) -> float:
    """:func:`noise` as a fraction of the larger value, for quantities that scale with a run's measured
    iteration (``(mean, stdev)`` of each run; one when the other run has none): a line's or a module's time
    is judged by the same share of noise as the iteration it is part of.  At least ``floor``."""
    pairs = [(mean, stdev) for mean, stdev in measured if mean > 0]
    if not pairs:
        return floor
    total = NOISE_SIGMAS * math.fsum(spread(mean, stdev, drift) for mean, stdev in pairs)
    return max(floor, total / max(mean for mean, _ in pairs))


def verdict(before: float, after: float, band: float, drift: Drift | None, *, up: str, down: str) -> str:
    """``up`` or ``down`` when ``after`` differs from ``before`` by more than ``band`` (the noise, at least
    the allowance), ``same`` within it, ``unknown`` where an unknown drift could be all of it (see the
    module docstring)."""
    delta = after - before
    if abs(delta) <= band or (drift is not None and drift.same_source):
        return SAME
    if drift is not None and drift.sigma is None and within_unknown_drift(before, after):
        return UNKNOWN
    return up if delta > 0 else down


def within_unknown_drift(before: float, after: float) -> bool:
    low, high = sorted((abs(before), abs(after)))
    return high < UNKNOWN_DRIFT_RATIO * low


def figure_change(before: float | None, after: float | None, fraction: float, drift: Drift | None, *, up: str,
                  down: str) -> dict[str, Any]:
    """One figure of two runs (a throughput, a phase's time, a peak, a final loss), judged with a band of
    ``fraction`` of the larger value: ``before``, ``after``, ``delta``, ``delta_percent`` (of ``before``) and
    ``verdict`` (None without both values), the shape ``diff --json`` gives its totals."""
    if before is None or after is None:
        return {"before": before, "after": after, "delta": None, "delta_percent": None, "verdict": None}
    delta = after - before
    judged = verdict(before, after, fraction * max(abs(before), abs(after)), drift, up=up, down=down)
    percent = 100.0 * delta / before if before else None
    return {"before": before, "after": after, "delta": delta, "delta_percent": percent, "verdict": judged}
