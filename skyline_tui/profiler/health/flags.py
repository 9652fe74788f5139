"""The rules that turn a layer's series into flags a user can act on (torch-free arithmetic).

The update ratio (‖Δw‖/‖w‖ per step, its median over the iterations) is judged three ways:

- against the model's own layers: its log distance from the median of its peers (the layers with
  parameters, normalization layers apart from the others: their scale starts at 1 and moves slowly by
  design) must stay within ``max(OUTLIER_FACTOR, OUTLIER_Z robust deviations)``: far off the rest is the
  signal, whatever the optimizer and its learning rate make typical for this model;
- against a ceiling: a step that moves a layer by a third of its norm replaces it within a few steps;
- against a floor: an update below float32's resolution rounds away.

The optimizer in view (its kind, the learning rate of the layer's group) explains the value in the
message: an Adam-family step moves each weight by about lr whatever the gradient's scale, an SGD step is
lr times the gradient.  A median over a handful of iterations says little: below ``MIN_ITERATIONS`` the
median-based flags are not raised and a note says why.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

from skyline_tui.report import HealthFlag, MetricSeries

MIN_ITERATIONS = 5  # before a median-based flag
MIN_PEERS = 5  # layers of a kind (normalization or not) before one is judged against the others
# The reference models' layers stay within 11x of their peers' median (DenseNet's last BatchNorm over 20
# steps; ResNet's fc 9x over 5): 30x leaves room, and a 300x learning rate moves a layer 100x past its peers.
OUTLIER_FACTOR = 30.0
OUTLIER_Z = 3.5  # robust z-score (median absolute deviation), Iglewicz and Hoaglin's cut-off
MAD_TO_SIGMA = 1.4826
# The reference models at their published settings (tests/fixtures/health/reference) stay below 0.23 over
# their first 5 steps (VGG-11 at SGD lr 0.1, whose early steps are its largest) and below 0.09 over 20;
# DeepView's TestNet, its loss the sum of its outputs, moves its convolutions by 0.64 to 0.91 a step.
UPDATE_RATIO_CEILING = 1 / 3
UPDATE_RATIO_FLOOR = 1e-7  # float32's epsilon is 1.2e-7: a smaller relative update mostly rounds away
DEAD_FRACTION_HIGH = 0.5
SATURATION_HIGH = 0.5


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
    calls: int = 1  # the most times it was called in one iteration: its activations are its last call's


@dataclass(frozen=True)
class Peers:
    """The layers one layer is judged against: the centre and spread of their log10 update ratios."""

    label: str  # "layers" or "normalization layers"
    count: int
    center: float  # median of log10(ratio)
    spread: float  # MAD_TO_SIGMA x median absolute deviation of log10(ratio)
    typical_lr: Optional[float]  # median learning rate over them

    @property
    def reach(self) -> float:
        """How far, in decades, a layer may sit from the centre."""
        return max(math.log10(OUTLIER_FACTOR), OUTLIER_Z * self.spread)


@dataclass(frozen=True)
class PopulationContext:
    """What every layer is judged against: the model's other layers, and how many iterations there were."""

    iterations: int
    peers: dict[bool, Peers] = field(default_factory=dict)  # by "is a normalization layer"
    started_at_zero: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()


def _median(metrics: Mapping[str, MetricSeries], name: str) -> Optional[float]:
    series = metrics.get(name)
    return series.median if series is not None else None


def _grew_from_zero(metrics: Mapping[str, MetricSeries]) -> bool:
    """Its weights were all zero before the first step (a zero-initialised residual branch or head)."""
    norms = metrics["weight_norm"].series if "weight_norm" in metrics else ()
    return bool(norms) and norms[0] == 0.0


def population_context(layers: Sequence["LayerInfo"], metrics: Mapping[str, Mapping[str, MetricSeries]],
                       iterations: int) -> PopulationContext:
    notes = []
    if iterations < MIN_ITERATIONS:
        notes.append(f"only {iterations} iteration(s): the update-ratio, dead-unit and saturation flags need a "
                     f"median over at least {MIN_ITERATIONS} and were not judged (the health budget ran out, even "
                     "stretched, or fewer were asked for: a smaller --batch-size, or a larger health_budget_s or "
                     "health_iterations in the API's ProfileConfig, gives more)")
    zero = frozenset(layer.path for layer in layers if layer.parameters and _grew_from_zero(metrics[layer.path]))
    if zero:
        shown = ", ".join(path or "(model)" for path in sorted(zero)[:3]) + (", ..." if len(zero) > 3 else "")
        notes.append(f"{len(zero)} layer(s) started from zero weights ({shown}): each early step is large next "
                     "to what has grown, so their update ratio is not judged")
    peers: dict[bool, Peers] = {}
    for norm, label in ((False, "layers"), (True, "normalization layers")):
        group = [layer for layer in layers if layer.parameters and layer.normalization == norm
                 and layer.path not in zero]
        logs = [math.log10(r) for layer in group
                if (r := _median(metrics[layer.path], "update_to_weight")) is not None and r > 0]
        if len(logs) >= MIN_PEERS:
            center = statistics.median(logs)
            spread = MAD_TO_SIGMA * statistics.median(abs(v - center) for v in logs)
            rates = [layer.optimizer.lr for layer in group if layer.optimizer is not None]
            peers[norm] = Peers(label, len(logs), center, spread, statistics.median(rates) if rates else None)
        elif logs and iterations >= MIN_ITERATIONS:
            notes.append(f"{len(logs)} {label} with an update ratio: too few (at least {MIN_PEERS}) to judge one "
                         "against the others; only the ceiling and the floor apply")
    return PopulationContext(iterations=iterations, peers=peers, started_at_zero=zero, notes=tuple(notes))


def module_flags(layer: "LayerInfo", metrics: Mapping[str, MetricSeries],
                 context: PopulationContext) -> list[HealthFlag]:
    flags: list[HealthFlag] = []
    grads = metrics.get("grad_norm")
    if layer.parameters and grads is not None and grads.series and all(v == 0.0 for v in grads.series):
        flags.append(HealthFlag("no_gradient", "no gradient reached its parameters in any iteration: is its output "
                                               "detached (.detach(), .data, no_grad), or every unit after it dead?"))
    if context.iterations < MIN_ITERATIONS:
        return flags
    if layer.path not in context.started_at_zero:
        flag = update_ratio_flag(layer, metrics, context.peers.get(layer.normalization))
        if flag is not None:
            flags.append(flag)
    dead = _median(metrics, "dead_fraction")
    if dead is not None and dead > DEAD_FRACTION_HIGH:
        flags.append(HealthFlag("dead_units", f"{dead:.0%} of its units output zero for every sample{_last(layer)} "
                                              f"(median over {context.iterations} iterations; flagged above "
                                              f"{DEAD_FRACTION_HIGH:.0%}): dead ReLUs; check the bias/initialisation "
                                              "before it or lower the learning rate"))
    saturation = _median(metrics, "saturation")
    if saturation is not None and saturation > SATURATION_HIGH:
        flags.append(HealthFlag("saturated", f"{saturation:.0%} of its outputs{_last(layer)} sit within 0.03 of a "
                                             "bound, where the gradient vanishes (flagged above "
                                             f"{SATURATION_HIGH:.0%}): scale its input or initialisation down"))
    return flags


def _last(layer: "LayerInfo") -> str:
    """Which call an activation's numbers are of, for a module called more than once an iteration."""
    return f" in the last of its {layer.calls} calls an iteration" if layer.calls > 1 else ""


def update_ratio_flag(layer: "LayerInfo", metrics: Mapping[str, MetricSeries],
                      peers: Optional[Peers]) -> Optional[HealthFlag]:
    ratio = _median(metrics, "update_to_weight")
    grad = _median(metrics, "grad_norm")
    if ratio is None or grad is None or grad <= 0:
        return None  # no ratio, or no gradient (the no_gradient flag speaks for it)
    setting = layer.optimizer
    value = f"each step moves its weights by {ratio:.1e} of their norm (median)"
    if ratio > UPDATE_RATIO_CEILING:
        return HealthFlag("update_ratio_high", f"{value}, above the ceiling 1/3: a step that large "
                                               "replaces the weights within a few steps (well-tuned models stay below "
                                               f"0.23 in their first steps). {_cause_high(layer, metrics, ratio)}")
    if ratio < UPDATE_RATIO_FLOOR:
        if setting is None:
            return HealthFlag("update_ratio_low", f"gradients reach it (norm {grad:.1e}) but no optimizer in view "
                                                  "steps its parameters: add them to the optimizer")
        return HealthFlag("update_ratio_low", f"{value}, below the floor {UPDATE_RATIO_FLOOR:g}: float32 keeps "
                                              "about 7 digits, so a smaller update mostly rounds away, although "
                                              f"gradients flow (norm {grad:.1e}). {_lr_note(setting, peers)}raise "
                                              "its learning rate")
    if peers is None:
        return None
    distance = math.log10(ratio) - peers.center
    if abs(distance) <= peers.reach:
        return None
    low, high = 10 ** (peers.center - peers.reach), 10 ** (peers.center + peers.reach)
    factor = 10 ** abs(distance)
    side = "above" if distance > 0 else "below"
    band = (f"{_times(factor)} {side} the median {10 ** peers.center:.1e} of the model's {peers.count} "
            f"{peers.label} (band {low:.1e} to {high:.1e}: within "
            f"{OUTLIER_FACTOR:g}x of that median, or {OUTLIER_Z:g} robust deviations where the layers spread wider)")
    if distance > 0:
        return HealthFlag("update_ratio_high", f"{value}, {band}. {_lr_note(setting, peers)}lower this layer's "
                                               "learning rate")
    return HealthFlag("update_ratio_low", f"{value}, {band}, although gradients flow (norm {grad:.1e}). "
                                          f"{_lr_note(setting, peers)}raise its learning rate, or check it is in "
                                          "the optimizer")


def _lr_note(setting: Optional["OptimizerSetting"], peers: Optional[Peers]) -> str:
    if setting is None:
        return "No optimizer in view steps it: "
    typical = peers.typical_lr if peers is not None else None
    if typical and setting.lr > 0 and abs(math.log10(setting.lr / typical)) >= 1:
        return f"Its learning rate {setting.lr:g} is {_times(setting.lr / typical)} the model's typical {typical:g}: "
    return f"{setting.name}, lr {setting.lr:g}: "


def _times(factor: float) -> str:
    """300x, 32x; 1e-07x, 2e+05x where a whole number would mislead or run long."""
    return f"{factor:.0f}x" if 1 <= factor < 1e4 else f"{factor:.0e}x"


def _cause_high(layer: "LayerInfo", metrics: Mapping[str, MetricSeries], ratio: float) -> str:
    setting = layer.optimizer
    if setting is None:
        return "Lower its learning rate"
    if setting.kind == "adaptive":
        weight = _median(metrics, "weight_norm")
        rms = f" (rms {weight / math.sqrt(layer.parameters):.1e})" if weight and layer.parameters else ""
        return (f"{setting.name} moves each weight by about lr ({setting.lr:g}) whatever the gradient's scale, "
                f"which is large next to these weights{rms}: lower the learning rate")
    grad = _median(metrics, "grad_norm")
    if setting.kind == "sgd" and grad is not None:
        return (f"{setting.name} steps by lr ({setting.lr:g}) x the gradient, whose norm is {grad:.1e}: is the loss "
                "summed over the batch or the outputs where a mean is meant? Lower the learning rate or scale the loss")
    return f"{setting.name}, lr {setting.lr:g}: lower the learning rate"
