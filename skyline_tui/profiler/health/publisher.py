"""The publisher: per-module activations, gradients, weights and updates of real training iterations.

Usable on any model in any process: the profile's health phase attaches it to a fresh model; a supervisor
attaches it to a user's live model and samples one step in N.  Hooks only, removed by ``detach``:

- a forward hook per watched module takes its output (``activations``): the built-in statistics are
  reduced on the device at once, the tensor is held only if a subscriber asked for it; a tensor hook on
  that output gives the gradient w.r.t. it (``layer_gradients``), again only when asked for.  A full
  backward hook would do the same but breaks an in-place op after the module (``nn.ReLU(inplace=True)``
  raises "Output 0 of BackwardHookFunction is a view and is being modified inplace").
- the weights are copied as the iteration starts; at its end, the weights minus that copy are the
  updates of every step it took (an optimizer's, or the script's own code's).  The global optimizer step
  pre-hook reads the gradients of that optimizer's parameters (backward is done, ``zero_grad`` has not
  cleared them); the optimizers seen stepping are the ones the flags judge with (their kind and the
  learning rate of each parameter group).
- between ``start_iteration`` and ``end_iteration``, ``OutsideModelCheck`` notes whether the calls made
  outside the model (the loss) made a NaN.

Outside a sampled iteration the hooks return at once: an unsampled step pays a few Python calls per module.
Norms are taken with one ``torch._foreach_norm`` per list and summed per module with ``index_add``;
every number of an iteration then crosses to the host in one ``tolist()``: one host sync per iteration.
"""

from __future__ import annotations

import math
import os
import sys
from collections import deque
from collections.abc import Iterable
from typing import Any, Callable, Optional

import torch
from torch import nn

from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.profiler.health.activations import dead_fraction, first_tensor, mean_and_std
from skyline_tui.profiler.health.flags import LayerInfo
from skyline_tui.profiler.health.judgement import BUILTIN_METRICS, IterationValues, SubscriberValues, judge_health
from skyline_tui.profiler.compiled import health_notes, is_compiling
from skyline_tui.profiler.health.layers import describe_layers, watched_modules
from skyline_tui.profiler.health.outside import OutsideModelCheck
from skyline_tui.profiler.health.subscribers import SubscriberSet
from skyline_tui.profiler.module_hooks import forward_hook, forward_pre_hook
from skyline_tui.profiler.optimizer_watch import OptimizerWatch
from skyline_tui.report import Health, NonFinite

RELU_FAMILY = (nn.ReLU, nn.ReLU6)
SATURATING = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0)}
SATURATION_MARGIN = 0.03

__all__ = ["BUILTIN_METRICS", "IterationValues", "OutsideModelCheck", "Publisher", "watched_modules"]


class Publisher:
    """Per-layer values of sampled training iterations of ``model``, kept for the judgement.

    ``attach()`` (or ``with publisher:``) hooks the model and the optimizers; ``start_iteration()`` and
    ``end_iteration()`` go around each sampled iteration (forward, backward and the optimizer steps);
    ``health()`` judges what was kept; ``detach()`` removes every hook.  ``files`` names the project's
    code (the call site of each layer; default: the current folder).  ``wanted_kinds`` are the messages
    subscribers need held (``skyline_tui.health.KINDS``); ``subscribers``, when given, are computed at
    the end of each iteration and add theirs.  ``window`` keeps only the last so many iterations (a long
    run); ``check_outside`` turns off the check of the calls made outside the model.
    """

    def __init__(self, model: nn.Module, files: Optional[ProjectFiles] = None, wanted_kinds: Iterable[str] = (),
                 *, subscribers: Optional[SubscriberSet] = None, window: Optional[int] = None,
                 check_outside: bool = True):
        self.modules = watched_modules(model)
        self._notes = health_notes(model)
        self.files = files if files is not None else ProjectFiles(os.getcwd())
        self.subscribers = subscribers
        self.wanted = set(wanted_kinds) | (subscribers.wanted_kinds if subscribers is not None else set())
        self.call_sites: dict[str, tuple[str, int]] = {}  # each module's last call in a sampled iteration
        self.calls: dict[str, int] = {}  # the most calls a module had in one sampled iteration (a shared ReLU's)
        self.params: dict[str, list[nn.Parameter]] = {
            path: [p for p in module.parameters(recurse=False) if p.requires_grad] for path, module in self.modules}
        self._flat_params: list[nn.Parameter] = [p for params in self.params.values() for p in params]
        owners = [i for i, (path, _) in enumerate(self.modules) for _ in self.params[path]]  # each's module index
        self._device = self._flat_params[0].device if self._flat_params else torch.device("cpu")
        self._owner = torch.tensor(owners, dtype=torch.long, device=self._device)
        # Where each parameter sits in the flat list (a tied weight sits under two modules).
        self._index: dict[int, list[int]] = {}
        for i, param in enumerate(self._flat_params):
            self._index.setdefault(id(param), []).append(i)
        # The same, for the weight, gradient and update norms of all parameters summed in one index_add.
        count = len(self.modules)
        self._owner3 = torch.cat([self._owner, self._owner + count, self._owner + 2 * count])
        self._zero = torch.zeros((), device=self._device)  # the norm of a gradient that is missing
        self._snapshot: list[torch.Tensor] = []  # the weights as an iteration begins (allocated once, at the first)
        self._handles: list[Any] = []  # the module hooks (none while parked)
        self._attached = False
        self._watch = OptimizerWatch(on_step_start=self._step_start, on_step_end=self._step_end)
        self.outside = OutsideModelCheck(model)
        self._check_outside = check_outside
        self._active = False  # inside a sampled iteration
        self.history: deque[IterationValues] = deque(maxlen=window)  # an entry per iteration ended: built-in values
        self.custom: deque[SubscriberValues] = deque(maxlen=window)  # and the subscribers'
        self.iterations = 0  # ended, all told (the window may keep fewer)
        self._reset()

    def _reset(self) -> None:
        self._activation_stats: dict[tuple[str, str], torch.Tensor] = {}
        self._calls_now: dict[str, int] = {}
        self.held: dict[str, dict[str, torch.Tensor]] = {}  # module -> kind -> tensor, for subscribers
        # Each parameter's gradient norm, on the device just before its optimizer's step (backward done, zero_grad
        # not run; a later backward into the same tensor cannot change it), or at the end for one no optimizer
        # stepped.  The gradients themselves are copied only for subscribers that asked for them.
        self._grad_norms: list[Optional[torch.Tensor]] = [None] * len(self._flat_params)
        self._grads: list[Optional[torch.Tensor]] = [None] * len(self._flat_params)
        self.stepped = False
        self.outside_finite = True
        self.finite = True  # the last iteration's values were all finite, and no call outside the model made a NaN

    # --- hooks -------------------------------------------------------------------------------------

    def attach(self) -> "Publisher":
        if self._attached:
            return self
        self._attached = True
        self._watch.__enter__()
        self.unpark()
        return self

    def park(self) -> None:
        """Between the sampled iterations of a live run: the module hooks off (a model of hundreds of layers
        pays two hook calls per layer and forward while they are on), the optimizer watch kept (two calls a
        step).  ``unpark`` (or ``start_iteration``) puts them back.  Not while an iteration is open; from a hook of
        the outermost module (a step updated by hand closes as the next forward begins), torch has already
        listed that call's pre-hooks: the change holds from the next call on."""
        if self._active:
            raise RuntimeError("park() inside a sampled iteration")
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.outside.remove()

    def unpark(self) -> None:
        if not self._attached or self._handles:
            return
        for path, module in self.modules:
            self._handles.append(forward_pre_hook(module, lambda module, args, path=path: self._call_site(path)))
            self._handles.append(forward_hook(
                module, lambda module, args, output, path=path: self._forward(path, module, output)))
        self.outside.install()

    @property
    def parked(self) -> bool:
        return self._attached and not self._handles

    def detach(self) -> None:
        """Every hook removed; an iteration still open is dropped."""
        self.cancel_iteration()
        self.outside.remove()
        if self._attached:
            self._watch.__exit__(None, None, None)
        self._attached = False
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "Publisher":
        return self.attach()

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    @property
    def optimizers(self) -> list[Any]:
        """The optimizers seen stepping while attached."""
        return self._watch.optimizers

    def _call_site(self, path: str) -> None:
        """Where a module is called: its last call, as its statistics are (a module called once: looked up once).
        A call under no_grad is not counted (an evaluation inside a supervised run's sampled step), nor a recompute
        inside backward (activation checkpointing: the graph task's id is -1 outside backward)."""
        if self._active and torch._C._current_graph_task_id() < 0 and not is_compiling():
            calls = self._calls_now[path] = self._calls_now.get(path, 0) + torch.is_grad_enabled()
            if (calls > 1 or path not in self.call_sites) and (site := self.files.innermost(sys._getframe(1))):
                self.call_sites[path] = site

    def _forward(self, path: str, module: nn.Module, output: Any) -> None:
        if not self._active or is_compiling():  # traced by dynamo: nothing of ours in the graph
            return
        out = first_tensor(output)
        if out is None or not out.is_floating_point() or out.numel() == 0:
            return
        if "layer_gradients" in self.wanted and out.requires_grad:
            out.register_hook(lambda grad, path=path: self._layer_gradient(path, grad))
        if torch._C._current_graph_task_id() >= 0:
            return  # a recompute inside backward: the same values as the forward's call
        # A module called several times in one iteration (a shared layer, an RNN cell) reports its last call.
        with torch.no_grad():
            value = out.detach()
            stats = self._activation_stats
            mean, std = mean_and_std(value)
            stats[(path, "activation_mean")] = mean
            stats[(path, "activation_std")] = std
            if isinstance(module, RELU_FAMILY):
                stats[(path, "dead_fraction")] = dead_fraction(value)
            bounds = next((b for kind, b in SATURATING.items() if isinstance(module, kind)), None)
            if bounds is not None:
                low, high = bounds
                near = (value <= low + SATURATION_MARGIN) | (value >= high - SATURATION_MARGIN)
                stats[(path, "saturation")] = near.float().mean()
        if "activations" in self.wanted:
            self.held.setdefault(path, {})["activations"] = value

    def _layer_gradient(self, path: str, grad: torch.Tensor) -> None:
        self.held.setdefault(path, {})["layer_gradients"] = grad.detach()

    def _step_end(self, optimizer: Any) -> None:
        if self._active:
            self.outside.step_back()

    def _step_start(self, optimizer: Any) -> None:
        if not self._active:
            return
        self.outside.step_aside()
        # Only this optimizer's parameters: a GAN's second optimizer steps after a backward of its own.
        self._read_gradients([i for group in getattr(optimizer, "param_groups", ())
                              for param in group.get("params", ()) for i in self._index.get(id(param), ())])
        self.stepped = True

    def read_gradients(self) -> None:
        """Every parameter's gradient now (updating by hand, as backward ends: the script's next ``zero_grad``
        clears them before the iteration ends)."""
        if self._active:
            self._read_gradients(list(range(len(self._flat_params))))

    def _read_gradients(self, indices: list[int]) -> None:
        """Norms (one ``_foreach_norm``) of the gradients not read yet in this iteration: a later step of
        the same parameters leaves the first one's gradient standing."""
        unread = [i for i in dict.fromkeys(indices) if self._grad_norms[i] is None]
        present = [(i, grad.detach()) for i in unread if (grad := self._flat_params[i].grad) is not None]
        norms = torch._foreach_norm([grad for _, grad in present]) if present else []
        for i in unread:
            self._grad_norms[i] = self._zero  # no gradient: a norm of zero
        for (i, grad), norm in zip(present, norms):
            self._grad_norms[i] = norm
            if "weight_gradients" in self.wanted:
                self._grads[i] = grad.clone()  # zero_grad(set_to_none=False) would zero it in place

    def _take_snapshot(self) -> None:
        """The weights as the iteration begins, into the same buffers every time (allocated once): the
        update is what changed by its end, whether optimizers or the script's own code changed them."""
        params = [p.detach() for p in self._flat_params]
        if params:
            if not self._snapshot:
                self._snapshot = [torch.empty_like(p) for p in params]
            torch._foreach_copy_(self._snapshot, params)

    # --- per iteration -----------------------------------------------------------------------------

    def start_iteration(self) -> None:
        """The next forward, backward and optimizer steps, until ``end_iteration``, are one sampled
        iteration.  Attaches (or unparks) first if needed."""
        self.attach()
        self.unpark()
        self.cancel_iteration()
        self._reset()
        self._take_snapshot()
        self._active = True
        if self._check_outside:
            self.outside.enter()

    def cancel_iteration(self) -> None:
        """Drop an iteration under way (it raised, or the run ended inside it): nothing is kept."""
        if not self._active:
            return
        self._active = False
        if self._check_outside:
            self.outside.leave()
            self.outside.take()
        self._reset()

    def run(self, iteration: Callable[[], Any]) -> None:
        """Call ``iteration`` between ``start_iteration`` and ``end_iteration``; if it raises, the
        iteration is dropped (the outside check leaves the torch function stack) and the error goes on."""
        try:
            iteration()
        except BaseException:
            self.cancel_iteration()
            raise

    def end_iteration(self) -> IterationValues:
        """Every built-in metric of the iteration, by module (one host sync), kept for ``health()`` with
        the subscribers' values of the same iteration."""
        if not self._active:
            raise RuntimeError("end_iteration() without start_iteration()")
        self._active = False
        if self._check_outside:
            self.outside.leave()
        self.calls.update({path: max(n, self.calls.get(path, 0)) for path, n in self._calls_now.items()})
        values = self._values()
        self.finite = self.outside_finite and all(math.isfinite(v) for metrics in values.values()
                                                  for v in metrics.values())
        custom: SubscriberValues = {}
        if self.subscribers is not None:
            custom = {path: self.subscribers.compute(path, module, self.held.get(path, {}))
                      for path, module in self.modules}
        self.held = {}
        self.history.append(values)
        self.custom.append(custom)
        self.iterations += 1
        return values

    # --- the judgement -----------------------------------------------------------------------------

    def layers(self) -> tuple[LayerInfo, ...]:
        """Each watched layer as the judgement sees it, with the optimizer setting that steps it."""
        return describe_layers(self.modules, self.params, self.call_sites, self.optimizers, self.calls)

    def health(self, non_finite: Optional[NonFinite] = None) -> Health:
        """The report's health section over the iterations kept: ``judge_health`` on them."""
        subscribers = self.subscribers
        return judge_health(self.layers(), list(self.history), list(self.custom),
                            subscriber_series=subscribers.series_names() if subscribers is not None else (),
                            non_finite=non_finite, errors=subscribers.errors if subscribers is not None else (),
                            notes=self._notes)

    def _values(self) -> IterationValues:
        self._read_gradients(list(range(len(self._flat_params))))  # no optimizer stepped them: what backward left
        params = [p.detach() for p in self._flat_params]
        before = self._snapshot
        parts: list[torch.Tensor] = []
        if params:
            self._hold_flat("weights", before)  # copies (torch.cat): the snapshot is reused below
            if "weight_gradients" in self.wanted:
                self._hold_flat("weight_gradients", [g if g is not None else torch.zeros_like(p)
                                                     for g, p in zip(self._grads, params)])
            norms = list(torch._foreach_norm(before))
            norms += [norm if norm is not None else self._zero for norm in self._grad_norms]
            if "weight_updates" in self.wanted:
                updates = list(torch._foreach_sub(params, self._snapshot))
                self._hold_flat("weight_updates", updates)
                norms += torch._foreach_norm(updates)
            else:
                # In place, into the snapshot: before - after, whose norm is the update's.
                torch._foreach_sub_(self._snapshot, params)
                norms += torch._foreach_norm(self._snapshot)
            parts.append(self._per_module(norms).sqrt().reshape(-1))  # weight, gradient, update norms
        keys = list(self._activation_stats)
        if keys:
            parts.append(torch.stack([t.to(self._device, torch.float32) for t in self._activation_stats.values()]))
        outside = self.outside.take()
        if outside is not None:
            parts.append(outside.reshape(1))
        flat = torch.cat([p.to(self._device, torch.float32) for p in parts]).tolist() if parts else []
        # 1.0 when no call outside the model made a NaN (or there was none)
        self.outside_finite = flat.pop() == 1.0 if outside is not None else True
        return self._unpack(flat, keys)

    def _per_module(self, norms: list[torch.Tensor]) -> torch.Tensor:
        """Per module (columns), the squared norms of its parameters' weights, gradients and updates
        (rows) summed: the squares of the norms of each module's parameters taken together."""
        squares = torch.stack([n.to(self._device, torch.float32) for n in norms]) ** 2
        summed = torch.zeros(3 * len(self.modules), device=self._device).index_add_(0, self._owner3, squares)
        return summed.reshape(3, len(self.modules))

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
                    weight, update = flat[i], flat[2 * count + i]
                    values[path]["weight_norm"] = weight
                    values[path]["grad_norm"] = flat[count + i]
                    # A parameter initialised to zero (a position embedding, a zero-init last layer) has
                    # no ratio in that iteration: no value, rather than an Inf that would end the phase.
                    if weight != 0.0:
                        values[path]["update_to_weight"] = update / weight
            offset = 3 * count
        for (path, metric), value in zip(keys, flat[offset:]):
            values[path][metric] = value
        return values
