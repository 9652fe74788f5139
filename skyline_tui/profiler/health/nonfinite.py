"""Where the first NaN or Inf came from, without ``torch.autograd.detect_anomaly``.

The health iterations notice a non-finite value for free (a norm or a mean of a tensor holding one is not
finite).  Only then is the iteration that showed it replayed, from a model rebuilt with the same seed,
under a checking mode: every torch call from the user's code has its outputs checked (forward), and
every autograd node those calls created checks the gradients it produces (backward), in the order the
engine runs them.  The first that is not finite is located like the run-time breakdown locates work: the
innermost project frame's line (backward work at the forward line that created the node) and the
module running.  Checking costs a host sync per call, so it runs for that one iteration only.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import torch
from torch.overrides import TorchFunctionMode

from skyline_tui.profiler.attribution import _PASS_THROUGH, ModuleTracker
from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.profiler.optimizer_watch import OptimizerWatch
from skyline_tui.report import NonFinite

Location = Optional[tuple[str, int]]


def has_non_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.is_complex()) or value.numel() == 0:
            return False
        return not bool(torch.isfinite(value).all())
    if isinstance(value, (tuple, list)):
        return any(has_non_finite(item) for item in value)
    return False


def has_nan(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.is_complex()) or value.numel() == 0:
            return False
        return bool(torch.isnan(value).any())
    if isinstance(value, (tuple, list)):
        return any(has_nan(item) for item in value)
    return False


# Calls whose infinities are usually meant: an attention mask filled with -inf, a tensor built full of inf.
# Their Inf is recorded only as a last resort (when nothing else goes wrong), never before a NaN.
INTENDED_INF_CALLS = frozenset({"masked_fill", "masked_fill_", "fill_", "full", "full_like", "new_full", "where",
                                "tensor", "as_tensor"})


class NonFiniteLocator(TorchFunctionMode):
    """Records the first call (forward) or autograd node (backward) whose output is not finite."""

    def __init__(self, files: ProjectFiles, modules: ModuleTracker, iteration: int):
        super().__init__()
        self._files = files
        self._modules = modules
        self._iteration = iteration
        # A NaN made from finite values decides (a NaN is never meant).  Else the first Inf made from finite
        # values (exp overflowing, log(0)) is the root of what follows, then a NaN made from infinities (a
        # fully masked softmax row), and an Inf from a fill-like call (an attention mask) only when nothing
        # else is found.
        self.first_nan: Optional[NonFinite] = None
        self.nan_from_finite = False
        self.first_inf: Optional[NonFinite] = None
        self.first_intended_inf: Optional[NonFinite] = None
        self.paused = False  # the optimizer's step is checked as a whole afterwards
        self._tagged: dict[int, Any] = {}

    @property
    def found(self) -> Optional[NonFinite]:
        if self.first_nan is not None and self.nan_from_finite:
            return self.first_nan
        return self.first_inf or self.first_nan or self.first_intended_inf

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.paused or self.nan_from_finite or func in _PASS_THROUGH:
            return out
        where = self._files.innermost(sys._getframe(1))
        module = self._modules.current
        name = getattr(func, "__name__", None) or repr(func)
        if has_non_finite(out):
            inputs = "its inputs already held NaN/Inf" if has_non_finite((args, list((kwargs or {}).values()))) \
                else "from finite inputs"
            self._record(module, "forward", where, f"{name} produced NaN/Inf {inputs}", nan=has_nan(out),
                         from_finite=inputs == "from finite inputs", intended=name in INTENDED_INF_CALLS)
        self._tag(out, module, where, name)
        return out

    def _tag(self, out: Any, module: Optional[str], where: Location, name: str) -> None:
        todo = [t.grad_fn for t in (out if isinstance(out, (tuple, list)) else [out])
                if isinstance(t, torch.Tensor) and t.grad_fn is not None]
        while todo:  # this call's node and the untagged nodes behind it: the ones this call created
            node = todo.pop()
            if id(node) in self._tagged:
                continue
            self._tagged[id(node)] = node
            node.register_hook(self._backward_check(module, where, f"the gradient of {name} ({node.name()})"))
            todo += [parent for parent, _ in node.next_functions
                     if parent is not None and type(parent).__name__ != "AccumulateGrad"]

    def _backward_check(self, module: Optional[str], where: Location, what: str) -> Callable[..., None]:
        def check(grad_inputs: Any, grad_outputs: Any) -> None:
            if not self.nan_from_finite and has_non_finite(grad_inputs):
                cause = "its incoming gradient already held NaN/Inf" if has_non_finite(grad_outputs) \
                    else "from a finite incoming gradient"
                self._record(module, "backward", where, f"{what} is NaN/Inf, {cause}", nan=has_nan(grad_inputs),
                             from_finite=not has_non_finite(grad_outputs))
        return check

    def _record(self, module: Optional[str], phase: str, where: Location, message: str, nan: bool,
                from_finite: bool, intended: bool = False) -> None:
        file, line = where if where is not None else (None, None)
        found = NonFinite(module=module, phase=phase, file=file, line=line, iteration=self._iteration,
                          message=message)
        if nan:
            if self.first_nan is None:
                self.first_nan, self.nan_from_finite = found, from_finite
        elif intended:
            self.first_intended_inf = self.first_intended_inf or found
        else:
            self.first_inf = self.first_inf or found

    def reset(self) -> None:
        self._tagged.clear()


def locate(model: torch.nn.Module, run_iteration: Callable[[], Any], files: ProjectFiles,
           iteration: int) -> Optional[NonFinite]:
    """Run one iteration of ``model`` (already brought to the state before ``iteration``) under the
    checking mode; the first non-finite value, or None when it did not happen again."""
    modules = ModuleTracker(model, files)
    locator = NonFiniteLocator(files, modules, iteration)

    def pause(optimizer: Any) -> None:
        locator.paused = True

    def resume(optimizer: Any) -> None:
        locator.paused = False

    watch = OptimizerWatch(on_step_start=pause, on_step_end=resume)
    try:
        with watch, modules, locator:
            run_iteration()
    finally:
        locator.reset()
    if locator.found is None and any(has_non_finite(p.detach()) for p in model.parameters()):
        return NonFinite(module=None, phase="optimizer", file=None, line=None, iteration=iteration,
                         message="the optimizer step made the weights NaN/Inf from finite gradients")
    return locator.found
