"""The rules that turn a layer's series into flags a user can act on.

Torch-free arithmetic over plain floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from skyline_tui.report import HealthFlag, MetricSeries

if TYPE_CHECKING:
    from skyline_tui.profiler.health.judgement import LayerInfo

UPDATE_RATIO_HIGH = 1e-2
UPDATE_RATIO_LOW = 1e-5
DEAD_FRACTION_HIGH = 0.5
SATURATION_HIGH = 0.5


@dataclass(frozen=True)
class PopulationContext:
    """What every layer is judged against: the model's other layers."""

    iterations: int
    notes: tuple[str, ...] = ()


def population_context(layers: Sequence["LayerInfo"], metrics: Mapping[str, Mapping[str, MetricSeries]],
                       iterations: int) -> PopulationContext:
    return PopulationContext(iterations=iterations)


def _median(metrics: Mapping[str, MetricSeries], name: str) -> Optional[float]:
    series = metrics.get(name)
    return series.median if series is not None else None


def module_flags(layer: "LayerInfo", metrics: Mapping[str, MetricSeries],
                 context: PopulationContext) -> list[HealthFlag]:
    flags: list[HealthFlag] = []
    grads = metrics.get("grad_norm")
    if layer.parameters and grads is not None and grads.series and all(v == 0.0 for v in grads.series):
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
