"""What ``torch.compile`` changes for the profiler: the wrapper's names, and the modules that run inside a graph.

``torch.compile(model)`` returns an ``OptimizedModule`` whose ``_orig_mod`` is the model; ``model.compile()``
compiles a module's call in place.  Inside a compiled graph our hooks and modes stand aside (they return at once
while dynamo traces: nothing of ours in the graph, no break, no guard on our state), so the modules there are
neither timed nor seen one by one: the compiled call is one block, on the line of the frame dynamo compiled.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

WRAPPED = "_orig_mod"  # torch.compile's attribute for the module it wraps


def _never() -> bool:
    return False


# True while dynamo traces the caller (it folds this very function to True): torch >= 2.3; before, never.
is_compiling: Callable[[], bool] = getattr(torch.compiler, "is_compiling", None) or _never
_TRACING: Any = getattr(getattr(torch, "_guards", None), "TracingContext", None)


def tracing() -> bool:
    """A compile is under way in this thread (AOT autograd tracing a graph, with fake and functional tensors)."""
    return _TRACING is not None and _TRACING.try_get() is not None


def named_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``model.named_modules()`` as the model names them (``0``, not ``_orig_mod.0``): the wrapped module and its
    wrapper share a name.  The wrapper's hooks run outside the graph (the wrapped module's, inside dynamo's
    context, stand aside): time in the compiled call goes to that name through the wrapper."""
    return [(".".join(part for part in path.split(".") if part != WRAPPED), module)
            for path, module in model.named_modules()]


def is_compiled(module: nn.Module) -> bool:
    return _is_wrapper(module) or getattr(module, "_compiled_call_impl", None) is not None


def timed_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``named_modules`` less the modules whose calls run inside a compiled graph (below a compiled module, whose
    own hooks run outside it, before it): those the breakdown times one by one."""
    inside: set[int] = set()
    for module in model.modules():
        if is_compiled(module):
            top = getattr(module, WRAPPED, module) if _is_wrapper(module) else module
            inside.update(id(m) for m in top.modules() if m is not top)
    return [(path, module) for path, module in named_modules(model) if id(module) not in inside]


def runs_compiled(model: nn.Module) -> bool:
    """Whether any part of the model runs compiled."""
    return any(is_compiled(module) for module in model.modules())


def block_notes(model: nn.Module) -> tuple[str, ...]:
    """The breakdown's note where part of the model runs compiled (``report.Breakdown.notes``)."""
    if runs_compiled(model):
        return ("torch.compile runs this model: its compiled forward and backward are timed as one block, on the "
                "line of the code it compiled; the lines and modules inside are not timed one by one",)
    return ()


def health_notes(model: nn.Module) -> tuple[str, ...]:
    """The health section's note where part of the model runs compiled (``report.Health.notes``): the publisher's
    hooks stay out of the graph, so the activations inside it are not read."""
    if runs_compiled(model):
        return ("torch.compile runs this model: the activation metrics and flags (dead units, saturation) are not "
                "read inside its compiled graph; weights, gradients and updates are",)
    return ()


def _is_wrapper(module: nn.Module) -> bool:
    return type(module).__name__ == "OptimizedModule"
