"""From per-iteration values to series, and from series to flags a user can act on.

Torch-free arithmetic over plain floats; the thresholds are the usual rules of thumb (an update of about
1e-3 of the weight per step is the healthy scale for SGD-like training).
"""

from __future__ import annotations

import math
import statistics
from typing import Optional

from skyline_tui.report import HealthFlag, MetricSeries

UPDATE_RATIO_HIGH = 1e-2
UPDATE_RATIO_LOW = 1e-5
DEAD_FRACTION_HIGH = 0.5
SATURATION_HIGH = 0.5


def summarize(series: list[Optional[float]]) -> MetricSeries:
    """``last`` and ``median`` over the finite values; a NaN/Inf stays in the series as null."""
    clean = tuple(v if v is not None and math.isfinite(v) else None for v in series)
    finite = [v for v in clean if v is not None]
    return MetricSeries(last=finite[-1] if finite else None,
                        median=statistics.median(finite) if finite else None, series=clean)


def _median(metrics: dict[str, MetricSeries], name: str) -> Optional[float]:
    series = metrics.get(name)
    return series.median if series is not None else None


def module_flags(metrics: dict[str, MetricSeries], has_parameters: bool) -> list[HealthFlag]:
    flags: list[HealthFlag] = []
    grads = metrics.get("grad_norm")
    if has_parameters and grads is not None and grads.series and all(v == 0.0 for v in grads.series):
        flags.append(HealthFlag("no_gradient", "no gradient reached its parameters in any iteration: is its output "
                                               "detached (.detach(), .data, no_grad), or every unit after it dead?"))
    ratio = _median(metrics, "update_to_weight")
    grad = _median(metrics, "grad_norm")
    if ratio is not None and ratio > UPDATE_RATIO_HIGH:
        flags.append(HealthFlag("update_ratio_high", f"each step changes its weights by {ratio:.1e} of their norm "
                                                     "(healthy ≈ 1e-3): lower this layer's learning rate"))
    elif ratio is not None and ratio < UPDATE_RATIO_LOW and grad is not None and grad > 0:
        flags.append(HealthFlag("update_ratio_low", f"each step changes its weights by only {ratio:.1e} of their "
                                                    "norm (healthy ≈ 1e-3) although gradients flow: raise its "
                                                    "learning rate, or check it is in the optimizer"))
    dead = _median(metrics, "dead_fraction")
    if dead is not None and dead > DEAD_FRACTION_HIGH:
        flags.append(HealthFlag("dead_units", f"{dead:.0%} of its units output zero for every sample: dead ReLUs; "
                                              "check the bias/initialisation before it or lower the learning rate"))
    saturation = _median(metrics, "saturation")
    if saturation is not None and saturation > SATURATION_HIGH:
        flags.append(HealthFlag("saturated", f"{saturation:.0%} of its outputs sit within 0.03 of a bound, where "
                                             "the gradient vanishes: scale its input or initialisation down"))
    return flags

