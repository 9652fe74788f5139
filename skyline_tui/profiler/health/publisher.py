"""The publisher: per-module activations, gradients, weights and updates of a real training iteration.

Hooks only, on a model built for the health phase (never the one the timing phases measure), removed on
the way out:

- a forward hook per watched module takes its output (``activations``): the built-in statistics are
  reduced on the device at once, the tensor is held only if a subscriber asked for it; a tensor hook on
  that output gives the gradient w.r.t. it (``layer_gradients``), again only when asked for.  A full
  backward hook would do the same but breaks an in-place op after the module (``nn.ReLU(inplace=True)``
  raises "Output 0 of BackwardHookFunction is a view and is being modified inplace").
- the global optimizer step pre-hook reads the gradients (backward is done, the step has not run and
  ``zero_grad`` has not cleared them) and snapshots the weights; at the end of the iteration the weights
  minus the snapshot are the updates of every step the iteration took.

A NaN made outside the model (``torch.log`` of a negative loss term) reaches no module output and, its
gradient being finite, no norm either: ``OutsideModelCheck``, a torch function mode taken off the stack
while the model's forward runs and passing the optimizer's step straight through, notes for the calls
outside the model (the loss, mostly: a few calls) whether their outputs are finite, on the device.

Norms are taken with one ``torch._foreach_norm`` per list and summed per module with ``index_add``;
every number of an iteration then crosses to the host in one ``tolist()``: one host sync per iteration.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.profiler.optimizer_watch import OptimizerWatch

RELU_FAMILY = (nn.ReLU, nn.ReLU6)
SATURATING = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0)}
SATURATION_MARGIN = 0.03

# Metrics the publisher computes itself, per module and iteration.
WEIGHT_METRICS = ("update_to_weight", "grad_norm", "weight_norm")
ACTIVATION_METRICS = ("activation_mean", "activation_std", "dead_fraction", "saturation")
BUILTIN_METRICS = WEIGHT_METRICS + ACTIVATION_METRICS

IterationValues = dict[str, dict[str, float]]  # module path -> metric -> value (may be NaN/Inf)


def watched_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers: modules that own trainable parameters, and leaf modules (activations, pooling).
    Containers are left out; their children speak for them."""
    chosen = []
    for path, module in model.named_modules():
        owns = any(p.requires_grad for p in module.parameters(recurse=False))
        if owns or not any(True for _ in module.children()):
            chosen.append((path, module))
    return chosen


def first_tensor(output: Any) -> Optional[torch.Tensor]:
    """The module's output tensor (an LSTM returns ``(output, (h, c))``: its first tensor)."""
    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    return output if isinstance(output, torch.Tensor) else None


class OutsideModelCheck(TorchFunctionMode):
    """Whether the torch calls made outside the model's forward produced only finite values."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.checks: list[torch.Tensor] = []
        self.paused = False  # while the optimizer steps
        self._popped: list[bool] = []  # per model forward under way: whether it took this mode off the stack
        self._handles: list[Any] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not self.paused and isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
            self.checks.append(torch.isfinite(out.detach()).all())
        return out

    def install(self) -> None:
        self._handles = [self.model.register_forward_pre_hook(lambda module, args: self._enter_model()),
                         self.model.register_forward_hook(lambda module, args, output: self._leave_model())]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _enter_model(self) -> None:
        # The model's own calls are checked through its modules' outputs; taking this mode off the stack
        # spares each of them a trip through Python.  Only our mode, and only when it is on top.
        depth = torch._C._len_torch_function_stack()
        popped = depth > 0 and torch._C._get_function_stack_at(depth - 1) is self
        if popped:
            torch._C._pop_torch_function_stack()
        self._popped.append(popped)

    def _leave_model(self) -> None:
        if self._popped and self._popped.pop():
            torch._C._push_on_torch_function_stack(self)

    def restore(self) -> None:
        """A forward that raised never reached its post-hook: put the mode back before it is exited."""
        while self._popped:
            self._leave_model()

    def take(self) -> Optional[torch.Tensor]:
        checks, self.checks = self.checks, []
        return torch.stack(checks).all() if checks else None


class Publisher:
    """Install with ``with publisher:``; call ``start_iteration`` / ``end_iteration`` around each one."""

    def __init__(self, model: nn.Module, files: ProjectFiles, wanted_kinds: set[str]):
        self.modules = watched_modules(model)
        self.files = files
        self.wanted = wanted_kinds
        self.call_sites: dict[str, tuple[str, int]] = {}
        self.params: dict[str, list[nn.Parameter]] = {
            path: [p for p in module.parameters(recurse=False) if p.requires_grad] for path, module in self.modules}
        self._flat_params: list[nn.Parameter] = [p for params in self.params.values() for p in params]
        # The module index of each flat parameter, for summing squared norms per module.
        owners = [i for i, (path, _) in enumerate(self.modules) for _ in self.params[path]]
        self._device = self._flat_params[0].device if self._flat_params else torch.device("cpu")
        self._owner = torch.tensor(owners, dtype=torch.long, device=self._device)
        self._handles: list[Any] = []
        self._watch = OptimizerWatch(on_step_start=self._step_start, on_step_end=self._step_end)
        self.outside = OutsideModelCheck(model)
        self._reset()

    def _reset(self) -> None:
        self._activation_stats: dict[tuple[str, str], torch.Tensor] = {}
        self.held: dict[str, dict[str, torch.Tensor]] = {}  # module -> kind -> tensor, for subscribers
        self._weights_before: Optional[list[torch.Tensor]] = None
        self._grads: Optional[list[Optional[torch.Tensor]]] = None
        self.stepped = False
        self.outside_finite = True

    # --- hooks -------------------------------------------------------------------------------------

    def __enter__(self) -> "Publisher":
        for path, module in self.modules:
            self._handles.append(module.register_forward_pre_hook(
                lambda module, args, path=path: self._call_site(path)))
            self._handles.append(module.register_forward_hook(
                lambda module, args, output, path=path: self._forward(path, module, output)))
        self._watch.__enter__()
        self.outside.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.outside.remove()
        self._watch.__exit__(*exc)
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _call_site(self, path: str) -> None:
        if path not in self.call_sites:
            site = self.files.innermost(sys._getframe(1))
            if site is not None:
                self.call_sites[path] = site

    def _forward(self, path: str, module: nn.Module, output: Any) -> None:
        out = first_tensor(output)
        if out is None or not out.is_floating_point() or out.numel() == 0:
            return
        # A module called several times in one iteration (a shared layer, an RNN cell in a loop)
        # reports its last call.
        with torch.no_grad():
            value = out.detach()
            stats = self._activation_stats
            stats[(path, "activation_mean")] = value.mean(dtype=torch.float32)
            stats[(path, "activation_std")] = (value.float().std() if value.numel() > 1
                                               else torch.zeros((), device=value.device))
            if isinstance(module, RELU_FAMILY):
                # A unit is dead when it is zero for every sample of the batch (dimension 0).
                alive = (value != 0).any(dim=0) if value.dim() > 1 else value != 0
                stats[(path, "dead_fraction")] = 1.0 - alive.float().mean()
            bounds = next((b for kind, b in SATURATING.items() if isinstance(module, kind)), None)
            if bounds is not None:
                low, high = bounds
                near = (value <= low + SATURATION_MARGIN) | (value >= high - SATURATION_MARGIN)
                stats[(path, "saturation")] = near.float().mean()
        if "activations" in self.wanted:
            self.held.setdefault(path, {})["activations"] = value
        if "layer_gradients" in self.wanted and out.requires_grad:
            out.register_hook(lambda grad, path=path: self._layer_gradient(path, grad))

    def _layer_gradient(self, path: str, grad: torch.Tensor) -> None:
        self.held.setdefault(path, {})["layer_gradients"] = grad.detach()

    def run(self, iteration: Any) -> None:
        """One iteration under the outside-model check."""
        with self.outside:
            try:
                iteration()
            finally:
                self.outside.restore()
                self.outside.paused = False

    def _step_end(self, optimizer: Any) -> None:
        self.outside.paused = False

    def _step_start(self, optimizer: Any) -> None:
        self.outside.paused = True
        if self._weights_before is None:  # the first step of the iteration: later ones add to the update
            self._take_gradients()
            self._weights_before = list(torch._foreach_mul([p.detach() for p in self._flat_params], 1.0)) \
                if self._flat_params else []
        self.stepped = True

    def _take_gradients(self) -> None:
        self._grads = [p.grad.detach() if p.grad is not None else None for p in self._flat_params]
        if "weight_gradients" in self.wanted:
            # A copy: zero_grad(set_to_none=False) would zero these tensors in place before compute().
            self._grads = [g.clone() if g is not None else None for g in self._grads]

    # --- per iteration -----------------------------------------------------------------------------

    def start_iteration(self) -> None:
        self._reset()

    def end_iteration(self) -> IterationValues:
        """Every built-in metric of the iteration, by module: one host sync."""
        if self._grads is None:  # no optimizer stepped: the gradients are whatever backward left
            self._take_gradients()
        params = [p.detach() for p in self._flat_params]
        before = self._weights_before if self._weights_before is not None else params
        count = len(self.modules)
        parts: list[torch.Tensor] = []
        if params:
            weight_sq = self._per_module(torch._foreach_norm(before), count)
            grads = [g for g in self._grads if g is not None] if self._grads else []
            present = [i for i, g in enumerate(self._grads or []) if g is not None]
            grad_sq = self._per_module(torch._foreach_norm(grads), count, present) if grads else \
                torch.zeros(count, device=self._device)
            if self._weights_before is not None:
                updates = torch._foreach_sub(params, self._weights_before)
                update_sq = self._per_module(torch._foreach_norm(updates), count)
                self._hold_flat("weight_updates", updates)
            else:
                updates, update_sq = [], torch.zeros(count, device=self._device)
            self._hold_flat("weights", before)
            if "weight_gradients" in self.wanted:
                self._hold_flat("weight_gradients", [g if g is not None else torch.zeros_like(p)
                                                     for g, p in zip(self._grads or [], params)])
            weight_norm = weight_sq.sqrt()
            parts += [weight_norm, grad_sq.sqrt(), update_sq.sqrt() / weight_norm]
        keys = list(self._activation_stats)
        if keys:
            parts.append(torch.stack([t.to(self._device, torch.float32) for t in self._activation_stats.values()]))
        outside = self.outside.take()
        if outside is not None:
            parts.append(outside.reshape(1))
        flat = torch.cat([p.to(self._device, torch.float32) for p in parts]).tolist() if parts else []
        # 1.0 when every call outside the model gave finite values (or there was none)
        self.outside_finite = flat.pop() == 1.0 if outside is not None else True
        return self._unpack(flat, keys)

    def _per_module(self, norms: list[torch.Tensor], count: int, which: Optional[list[int]] = None) -> torch.Tensor:
        """Squared norms of each module's parameters, summed: the square of the norm of them all."""
        squares = torch.stack([n.to(self._device, torch.float32) for n in norms]) ** 2
        owner = self._owner if which is None else self._owner[torch.tensor(which, device=self._device)]
        return torch.zeros(count, device=self._device).index_add_(0, owner, squares)

    def _hold_flat(self, kind: str, tensors: list[torch.Tensor]) -> None:
        if kind not in self.wanted:
            return
        start = 0
        for path, _module in self.modules:
            mine = tensors[start:start + len(self.params[path])]
            start += len(mine)
            if mine:
                self.held.setdefault(path, {})[kind] = torch.cat([t.reshape(-1) for t in mine])

    def _unpack(self, flat: list[float], keys: list[tuple[str, str]]) -> IterationValues:
        values: IterationValues = {path: {} for path, _ in self.modules}
        count = len(self.modules)
        offset = 0
        if self._flat_params:
            for i, (path, _) in enumerate(self.modules):
                if self.params[path]:
                    values[path]["weight_norm"] = flat[i]
                    values[path]["grad_norm"] = flat[count + i]
                    values[path]["update_to_weight"] = flat[2 * count + i]
            offset = 3 * count
        for (path, metric), value in zip(keys, flat[offset:]):
            values[path][metric] = value
        return values
