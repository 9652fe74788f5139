"""Seeing the user's optimizer without being handed it.

The iteration provider keeps its optimizer in a closure, so the profiler cannot ask for it.  PyTorch calls
global step pre/post hooks for every ``Optimizer.step``; registering a pair for the duration of a
measurement tells us which optimizers stepped (their state is the optimizer memory) and when each step
ran (the optimizer's share of the run time).  The hooks are removed on exit, exceptions included.

One step can run the hooks twice.  torch wraps a class's ``step`` in the hook-calling wrapper when the first
instance of that class is built (``Optimizer._patch_step_function``).  A subclass whose ``step`` calls
``super().step()`` therefore runs the hooks around its own step and again around the base class's inside it,
once any instance of the base class was built anywhere in the process (a plain ``SGD``).  ``OutermostSteps``
tells the step itself from the call nested in it.
"""

from __future__ import annotations

import sys
import weakref
from types import FrameType
from typing import Any, Callable, Iterator, Optional

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

StepCallback = Callable[[torch.optim.Optimizer], None]


class OutermostSteps:
    """Which step hook calls are an optimizer's step, not a ``super().step()`` nested in it (module doc)."""

    def __init__(self) -> None:
        self._depth: dict[int, int] = {}  # id(optimizer) -> step calls open

    def begins(self, optimizer: Any) -> bool:
        """A pre-hook ran (this is called from the hook itself, which torch's step wrapper called): whether a step
        begins.  An open call that is no longer on the stack is a step that raised (its post-hook never ran):
        forgotten."""
        key = id(optimizer)
        depth = self._depth.get(key, 0)
        if depth and not _inside_a_step_of(optimizer, sys._getframe(2)):
            depth = 0
        self._depth[key] = depth + 1
        return depth == 0

    def ends(self, optimizer: Any) -> bool:
        """A post-hook ran: whether the step ends (the outermost call)."""
        key = id(optimizer)
        depth = self._depth.pop(key, 0) - 1
        if depth > 0:
            self._depth[key] = depth
        return depth <= 0


def _inside_a_step_of(optimizer: Any, wrapper: Optional[FrameType]) -> bool:
    """Whether a frame above ``wrapper`` runs the same code (torch's step wrapper) for ``optimizer``."""
    if wrapper is None:
        return False
    code, frame = wrapper.f_code, wrapper.f_back
    while frame is not None:
        if frame.f_code is code:
            names = frame.f_locals
            if names.get("self") is optimizer or (names.get("args") or (None,))[0] is optimizer:
                return True
        frame = frame.f_back
    return False


class OptimizerWatch:
    """Context manager: records every optimizer that steps; optional callbacks around each step (once a step,
    however many times it ran the hooks: ``OutermostSteps``)."""

    def __init__(self, on_step_start: Optional[StepCallback] = None,
                 on_step_end: Optional[StepCallback] = None):
        self._on_start = on_step_start
        self._on_end = on_step_end
        # Weakly: a script that replaces its optimizer (a fresh one per fold) frees the old one.
        self._optimizers: weakref.WeakValueDictionary[int, torch.optim.Optimizer] = weakref.WeakValueDictionary()
        self._handles: list[Any] = []
        self._outermost = OutermostSteps()

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return list(self._optimizers.values())

    def _pre(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._optimizers.setdefault(id(optimizer), optimizer)
        if self._outermost.begins(optimizer) and self._on_start is not None:
            self._on_start(optimizer)

    def _post(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._outermost.ends(optimizer) and self._on_end is not None:
            self._on_end(optimizer)

    def __enter__(self) -> "OptimizerWatch":
        self._handles = [register_optimizer_step_pre_hook(self._pre),
                         register_optimizer_step_post_hook(self._post)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def optimizer_state_tensors(optimizers: list[torch.optim.Optimizer]) -> Iterator[torch.Tensor]:
    """Every tensor held in the optimizers' per-parameter state (momentum buffers, Adam moments, steps)."""
    for optimizer in optimizers:
        for state in optimizer.state.values():
            if not isinstance(state, dict):
                continue
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    yield value
