"""Seeing the user's optimizer without being handed it.

The iteration provider keeps its optimizer in a closure, so the profiler cannot ask for it.  PyTorch calls
global step pre/post hooks for every ``Optimizer.step``; registering a pair for the duration of a
measurement tells us which optimizers stepped (their state is the optimizer memory) and when each step
ran (the optimizer's share of the run time).  The hooks are removed on exit, exceptions included.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

StepCallback = Callable[[torch.optim.Optimizer], None]


class OptimizerWatch:
    """Context manager: records every optimizer that steps; optional callbacks around each step."""

    def __init__(self, on_step_start: Optional[StepCallback] = None,
                 on_step_end: Optional[StepCallback] = None):
        self._on_start = on_step_start
        self._on_end = on_step_end
        self._optimizers: dict[int, torch.optim.Optimizer] = {}
        self._handles: list[Any] = []

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return list(self._optimizers.values())

    def _pre(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._optimizers.setdefault(id(optimizer), optimizer)
        if self._on_start is not None:
            self._on_start(optimizer)

    def _post(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._on_end is not None:
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
