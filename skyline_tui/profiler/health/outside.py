"""A NaN made outside the model: the loss line, mostly.

``torch.log`` of a negative loss term reaches no module output and, its gradient being finite, no norm
either.  ``OutsideModelCheck`` is a torch function mode, taken off the stack while the model's forward
runs and while an optimizer steps, that notes for the calls outside the model (a few calls) whether their
outputs hold a NaN, on the device: no host sync until the iteration ends.

A NaN, not an Inf: outside the model an Inf is often meant (logits masked with ``-inf``, and their
``log_softmax``, before a loss that never reads them).  An Inf that matters shows anyway: a loss that is not
finite (``skyline-tui run`` reads every step's), or the gradients and weights it leads to (the modules' norms).

In a live training run the mode is entered at the start of a sampled step and left at its end, from
whatever hook the supervisor uses: ``leave`` takes it out of the stack even when the user's code pushed
a mode of its own above it meanwhile (``with torch.device(...)`` is one).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from skyline_tui.profiler.compiled import is_compiling
from skyline_tui.profiler.module_hooks import forward_hook, forward_pre_hook

_ATTRIBUTE_ACCESS = ("__get__", "__set__")  # what a torch function mode sees for ``tensor.grad`` and the like
# Memory not written yet: whatever it holds (a NaN, now and then) is not a value the script made.  The health
# publisher's own snapshot of the weights is one (``empty_like``), made while another trained model's check
# (a GAN's) is on the stack.
_UNINITIALIZED = frozenset({"empty", "empty_like", "new_empty", "empty_strided", "new_empty_strided"})

_PLAIN = (torch.Tensor, nn.Parameter)


class OutsideModelCheck(TorchFunctionMode):
    """Whether the torch calls made outside the model's forward produced no NaN."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.checks: list[torch.Tensor] = []
        # Per model forward or optimizer step under way: whether it took this mode off the stack (else, under
        # another mode, it only stood aside: ``_aside``).
        self._popped: list[bool] = []
        self._aside = 0
        self._handles: list[Any] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        # Attribute reads (``p.grad`` for every parameter in ``zero_grad``) make no new value, and checking
        # each gradient again would cost a full pass over it: a non-finite gradient shows in grad_norm.
        name = getattr(func, "__name__", None)
        if self._aside or name in _ATTRIBUTE_ACCESS or name in _UNINITIALIZED:
            return out
        if not isinstance(out, torch.Tensor) or not out.is_floating_point() or not out.numel():
            return out
        if is_compiling() or type(out) not in _PLAIN:
            return out  # torch.compile tracing (its fake and functional tensors): no values yet
        if out._base is not None and not any(out is arg for arg in (*args, *(kwargs or {}).values())):
            return out  # a new view (``logits.view(-1, n)``) of values checked where they were made
        # Its largest value is NaN exactly when one is (amax propagates NaN): one plain reduction, ~40x
        # cheaper on CPU than ``isnan(out).any()``'s passes.
        self.checks.append(out.detach().amax())
        return out

    def install(self) -> None:
        self._handles = [forward_pre_hook(self.model, lambda module, args: self.step_aside()),
                         forward_hook(self.model, lambda module, args, output: self.step_back())]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def step_aside(self) -> None:
        """Off the stack while the model's forward runs: its calls are checked through its modules'
        outputs; and while the optimizer steps: its values are the next iteration's weights, checked
        by their norms.  Each of their calls (an Adam step makes ~20 per parameter) is spared a trip
        through Python.  Only our mode, and only when it is on top; below another (a second trained model's
        check, a user's mode) it stays and lets the calls pass unchecked."""
        depth = torch._C._len_torch_function_stack()
        popped = depth > 0 and torch._C._get_function_stack_at(depth - 1) is self
        if popped:
            torch._C._pop_torch_function_stack()
        else:
            self._aside += 1
        self._popped.append(popped)

    def step_back(self) -> None:
        if not self._popped:
            return
        if self._popped.pop():
            torch._C._push_on_torch_function_stack(self)
        else:
            self._aside -= 1

    def restore(self) -> None:
        """A forward or a step that raised never reached its post-hook: put the mode back before it is
        exited."""
        while self._popped:
            self.step_back()

    def take(self) -> Optional[torch.Tensor]:
        """True (a tensor, on the device) when no call outside the model made a NaN; None when none was seen."""
        checks, self.checks = self.checks, []
        return torch.stack(checks).isnan().any().logical_not() if checks else None

    # --- entered at a step's start, left at its end (a live run) ------------------------------------

    def enter(self) -> None:
        torch._C._push_on_torch_function_stack(self)

    def leave(self) -> None:
        """Out of the torch function stack wherever it sits; the modes above it stay, in their order."""
        self.restore()
        above: list[Any] = []
        while torch._C._len_torch_function_stack() > 0:
            top = torch._C._pop_torch_function_stack()
            if top is self:
                break
            above.append(top)
        for mode in reversed(above):
            torch._C._push_on_torch_function_stack(mode)
