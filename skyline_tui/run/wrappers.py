"""The torch functions ``skyline-tui run`` wraps in the script's process besides backward (``hooks.py``): the
optimizer's constructor, and mixed precision's ``GradScaler``.  Each wrapper calls back into the hooks.

- ``Optimizer.__init__``: the engine knows which optimizers exist before they step (a GAN builds both before
  its loop), and an optimizer built after the first step may be over a model the hooks have not seen (a fresh
  model per fold of a cross-validation).
- ``zero_grad`` of ``Optimizer`` and ``Module``: the end of the losses a step's update applies (``steps.py``: SAM
  zeroes the gradients of its first backward, and the step's loss is that one, not the sum of both).
- ``GradScaler.step``: mixed precision skips ``optimizer.step()`` when the scaled gradients overflowed (often,
  in the first iterations): no step hook runs, yet the script's iteration is over.  A skipped
  ``GradScaler.step`` counts as the optimizer's step.
- ``GradScaler.scale``: ``scaler.scale(loss).backward()`` runs backward on the loss times the scale (up to
  2**16, or inf): the loss recorded is the one the script computed, the tensor ``scale`` was given.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch


def wrap_optimizer_init(built: Callable[[Any], None]) -> None:
    """``built(optimizer)`` once each optimizer's own constructor has run."""
    original = torch.optim.Optimizer.__init__

    @functools.wraps(original)
    def __init__(optimizer: Any, *args: Any, **kwargs: Any) -> None:
        original(optimizer, *args, **kwargs)
        built(optimizer)

    torch.optim.Optimizer.__init__ = __init__  # type: ignore[method-assign,assignment]


def wrap_zero_grad(zeroed: Callable[[], Any]) -> None:
    """``zeroed()`` before each ``zero_grad`` of an optimizer or a module (a subclass's own, not calling theirs,
    goes unseen)."""
    for cls in (torch.optim.Optimizer, torch.nn.Module):
        original = cls.zero_grad

        def zero_grad(owner: Any, *args: Any, original: Any = original, **kwargs: Any) -> Any:
            zeroed()
            return original(owner, *args, **kwargs)

        cls.zero_grad = functools.wraps(original)(zero_grad)  # type: ignore[method-assign,assignment]


def wrap_grad_scaler(steps: Callable[[], int], skipped: Callable[[Any, Any, Any], None],
                     scaled: Callable[[Any, Any], None]) -> None:
    """``skipped(optimizer, args, kwargs)`` when a ``GradScaler.step`` ran no optimizer step (``steps()`` counts
    them); ``scaled(scaled_loss, loss)`` after each ``GradScaler.scale`` of a tensor."""
    for cls in {getattr(torch.amp, "GradScaler", None), getattr(torch.cuda.amp, "GradScaler", None)}:
        if cls is None or "step" not in cls.__dict__:
            continue
        original_step = cls.__dict__["step"]

        def step(scaler: Any, optimizer: Any, *args: Any, original: Any = original_step, **kwargs: Any) -> Any:
            before = steps()
            result = original(scaler, optimizer, *args, **kwargs)
            if steps() == before:
                skipped(optimizer, args, kwargs)
            return result

        cls.step = functools.wraps(original_step)(step)
    cls = getattr(torch.amp, "GradScaler", None)
    if cls is None or "scale" not in cls.__dict__:
        return
    original_scale = cls.__dict__["scale"]

    @functools.wraps(original_scale)
    def scale(scaler: Any, outputs: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_scale(scaler, outputs, *args, **kwargs)
        if isinstance(result, torch.Tensor) and isinstance(outputs, torch.Tensor):
            scaled(result, outputs)  # the last one only: the next backward's
        return result

    cls.scale = scale
