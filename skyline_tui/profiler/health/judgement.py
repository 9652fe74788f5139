"""From the values a publisher collected to the report's health section: series, and the flags.

Torch-free, on plain data, so that the profile's health phase and the supervision of a live training run
judge the same way (both call ``judge_health``), and so that values sent over a pipe can be judged in a
process without torch.  ``LayerInfo`` says what is known about a layer beside its numbers: its type,
whether it is a normalization layer, how many parameters it trains, and the optimizer setting that
steps them (read from the real optimizer objects by ``Publisher.layers``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from skyline_tui.profiler.health.flags import module_flags, population_context
from skyline_tui.report import Health, HealthError, HealthFlag, MetricSeries, ModuleHealth, NonFinite

# One iteration's values: module path -> metric -> value (may be NaN/Inf).
IterationValues = dict[str, dict[str, float]]
# One iteration's subscriber values: module path -> series name -> value (None: no value this time).
SubscriberValues = Mapping[str, Mapping[str, Optional[float]]]

# The publisher's own metrics, per module and iteration, in the order a report lists them.
WEIGHT_METRICS = ("update_to_weight", "grad_norm", "weight_norm")
ACTIVATION_METRICS = ("activation_mean", "activation_std", "dead_fraction", "saturation")
BUILTIN_METRICS = WEIGHT_METRICS + ACTIVATION_METRICS


@dataclass(frozen=True)
class OptimizerSetting:
    """The optimizer stepping a layer's parameters (the group of its largest parameter)."""

    name: str  # the optimizer's class name, "AdamW"
    kind: str  # "adaptive" (Adam family: a step of about lr per weight) | "sgd" (a step of lr x gradient) | "other"
    lr: float


@dataclass(frozen=True)
class LayerInfo:
    path: str  # dotted module path ("" = the root)
    type: str  # class name
    file: Optional[str] = None  # project line where it is called
    line: Optional[int] = None
    parameters: int = 0  # trainable elements it owns (0: an activation, a pooling layer)
    normalization: bool = False  # a BatchNorm/LayerNorm/GroupNorm-like layer: its affine scale and shift
    optimizer: Optional[OptimizerSetting] = None  # None: no optimizer in view stepped its parameters


def summarize(series: Sequence[Optional[float]]) -> MetricSeries:
    """``last`` and ``median`` over the finite values; a NaN/Inf stays in the series as null."""
    clean = tuple(v if v is not None and math.isfinite(v) else None for v in series)
    finite = [v for v in clean if v is not None]
    return MetricSeries(last=finite[-1] if finite else None,
                        median=statistics.median(finite) if finite else None, series=clean)


def judge_health(layers: Sequence[LayerInfo], history: Sequence[IterationValues],
                 custom: Sequence[SubscriberValues] = (), subscriber_series: Iterable[str] = (),
                 non_finite: Optional[NonFinite] = None, errors: Iterable[HealthError] = (),
                 notes: Iterable[str] = ()) -> Health:
    """The health section: each layer's series (built-in, then the subscribers' in ``subscriber_series``)
    over the ``history`` of iterations (and ``custom``, the subscribers' values of the same iterations),
    its flags judged against the model's other layers and the optimizer in view, the first non-finite
    value (located by the caller) and the subscribers' errors."""
    names = sorted(set(subscriber_series))
    metrics_of: dict[str, dict[str, MetricSeries]] = {}
    for layer in layers:
        metrics: dict[str, MetricSeries] = {}
        for name in BUILTIN_METRICS:
            if any(name in it.get(layer.path, {}) for it in history):
                metrics[name] = summarize([it.get(layer.path, {}).get(name) for it in history])
        for name in names:
            if any(it.get(layer.path, {}).get(name) is not None for it in custom):
                metrics[name] = summarize([it.get(layer.path, {}).get(name) for it in custom])
        metrics_of[layer.path] = metrics
    context = population_context(layers, metrics_of, len(history))
    rows = []
    for layer in layers:
        metrics = metrics_of[layer.path]
        flags = module_flags(layer, metrics, context)
        if non_finite is not None and non_finite.module == layer.path:
            flags.append(HealthFlag("non_finite", f"first NaN/Inf here ({non_finite.phase}, iteration "
                                                  f"{non_finite.iteration}): {non_finite.message}"))
        rows.append(ModuleHealth(module=layer.path, type=layer.type, file=layer.file, line=layer.line,
                                 metrics=metrics, flags=tuple(flags)))
    return Health(iterations=len(history), modules=tuple(rows), non_finite=non_finite, errors=tuple(errors),
                  **_notes(tuple(notes) + context.notes))


def _notes(notes: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {"notes": notes} if notes else {}
