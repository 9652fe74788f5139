"""What the judgement needs to know about each layer beside its numbers, read from the live objects:
its kind (a normalization layer is judged apart), its trainable parameters, and the optimizer setting
that steps them, from the optimizers that stepped while the publisher watched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import nn

from skyline_tui.profiler.compiled import named_modules
from skyline_tui.profiler.health.flags import LayerInfo, OptimizerSetting

# Optimizers whose step is scaled per weight by a running measure of its gradient's size: each weight
# moves by about lr whatever the gradient's scale (Rprop and Adafactor likewise, by their own rules).
ADAPTIVE = frozenset({"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "Adagrad", "Adadelta", "RMSprop",
                      "Rprop", "Adafactor", "FusedAdam", "FusedLAMB", "LAMB", "Lion", "AdamW8bit", "Adam8bit"})
# Optimizers whose step is the learning rate times the gradient (with momentum, averaged or not).
SGD_LIKE = frozenset({"SGD", "ASGD", "FusedSGD"})

# Normalization layers: an affine scale that starts at 1 and a shift at 0, both moved slowly by design.
NORMALIZATION = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_NORM_NAMES = ("Norm",)  # RMSNorm (torch >= 2.4) and the users' own LayerNorm/RMSNorm classes


def watched_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers: modules that own trainable parameters, and leaf modules (activations, pooling).
    Containers are left out; their children speak for them.  Named as the model is without ``torch.compile``'s
    wrapper (``0``, not ``_orig_mod.0``)."""
    chosen = []
    for path, module in named_modules(model):
        owns = any(p.requires_grad for p in module.parameters(recurse=False))
        if owns or not any(True for _ in module.children()):
            chosen.append((path, module))
    return chosen


def optimizer_kind(optimizer: Any) -> str:
    name = type(optimizer).__name__
    if name in ADAPTIVE:
        return "adaptive"
    if name in SGD_LIKE:
        return "sgd"
    defaults = getattr(optimizer, "defaults", {})
    if "betas" in defaults or "beta1" in defaults:  # a user's Adam variant
        return "adaptive"
    if "momentum" in defaults:
        return "sgd"
    return "other"


def is_normalization(module: nn.Module) -> bool:
    return isinstance(module, NORMALIZATION) or any(part in type(module).__name__ for part in _NORM_NAMES)


def settings_by_parameter(optimizers: Sequence[Any]) -> dict[int, OptimizerSetting]:
    """id(parameter) -> the setting of the group that holds it (the first optimizer holding it wins)."""
    found: dict[int, OptimizerSetting] = {}
    for optimizer in optimizers:
        name, kind = type(optimizer).__name__, optimizer_kind(optimizer)
        for group in getattr(optimizer, "param_groups", ()):
            lr = group.get("lr")
            if isinstance(lr, torch.Tensor):
                lr = float(lr)
            if not isinstance(lr, (int, float)):
                continue
            setting = OptimizerSetting(name=name, kind=kind, lr=float(lr))
            for param in group.get("params", ()):
                found.setdefault(id(param), setting)
    return found


def describe_layers(modules: Sequence[tuple[str, nn.Module]], params: dict[str, list[nn.Parameter]],
                    call_sites: dict[str, tuple[str, int]], optimizers: Sequence[Any],
                    calls: dict[str, int]) -> tuple[LayerInfo, ...]:
    settings = settings_by_parameter(optimizers)
    layers = []
    for path, module in modules:
        own = params.get(path, [])
        setting: Optional[OptimizerSetting] = None
        # The group of its largest parameter (a weight, where the bias sits in a no-decay group).
        for param in sorted(own, key=lambda p: p.numel(), reverse=True):
            setting = settings.get(id(param))
            if setting is not None:
                break
        site = call_sites.get(path)
        layers.append(LayerInfo(path=path, type=type(module).__name__, file=site[0] if site else None,
                                line=site[1] if site else None, parameters=sum(p.numel() for p in own),
                                normalization=bool(own) and is_normalization(module), optimizer=setting,
                                calls=calls.get(path, 1)))
    return tuple(layers)
