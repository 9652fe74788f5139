"""The hooks inside the script's process: what they watch, and what they cost per step.

Installed once torch is imported (before the script's first torch call), never removed while the script runs:

- the global optimizer step pre/post hooks (once a step, however often ``super().step()`` runs them:
  ``OutermostSteps``), and ``Optimizer.__init__`` wrapped so the engine knows which optimizers exist (a GAN
  builds both before its loop);
- ``torch.autograd.backward`` (which ``Tensor.backward`` calls) and ``torch.autograd.grad`` wrapped: the
  backward phase and the loss, the scalar it ran on;
- module forward hooks on the *outermost* modules: global module hooks until the first step closes (to find
  them: the modules called with nothing around them), then hooks on those modules alone, so a model of
  hundreds of layers pays two hook calls per forward, not hundreds.  A module first called after the first
  step is not seen (its time is ``other``).  Only the model's calls count (``readings.ModelCalls``): a transform
  on the data is a module too (torchvision's ``Normalize``, per sample), and its time is ``other``;
- per-layer health (:mod:`skyline_tui.run.health`) from the second step on, on the steps its schedule picks
  (:mod:`skyline_tui.run.health_budget`: every N, or within a share of the run's time); its failure ends health.

Per step: a few Python calls, ``perf_counter`` reads, the losses read (``item()`` on CPU; on CUDA a non-blocking
copy read once its event has passed), one packed record (``events.PACKED_STEP_FIELDS``).  Memory: at most every
``MEMORY_EVERY_S`` (:mod:`skyline_tui.run.readings`).  A forked DataLoader worker inherits the hooks: it sends nothing.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
import weakref
from collections import deque
from typing import Any, Callable, Optional

import torch
from torch.nn.modules import module as nn_module
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from skyline_tui.profiler.compiled import tracing
from skyline_tui.profiler.module_hooks import forward_hook, forward_pre_hook
from skyline_tui.profiler.optimizer_watch import OutermostSteps
from skyline_tui.run import events as ev
from skyline_tui.run.channel import current_pid
from skyline_tui.run.events import none_as_nan
from skyline_tui.run.health_budget import EveryN, WithinBudget, schedule
from skyline_tui.run.readings import MemoryReader, ModelCalls, PendingLoss, first_batch_tensor, read_loss
from skyline_tui.run.steps import BACKWARD, EVALUATION, FORWARD, OPTIMIZER, Segment, StepEngine
from skyline_tui.run.wrappers import wrap_grad_scaler, wrap_optimizer_init, wrap_zero_grad

NAN = float("nan")


class RunHooks:
    """The step engine fed by torch's hooks; closed steps go to ``send`` as ``Step`` events."""

    def __init__(self, send: Callable[[Any], None], started: float, samples_per_step: Optional[int] = None,
                 health_every: Optional[int] = None, root: Optional[str] = None,
                 send_step: Optional[Callable[[Any, float], None]] = None, health_budget: Optional[float] = None):
        self._send = send
        self._send_step = send_step or (lambda record, now: None)
        self._health_every = health_every  # fixed by --health-every N, else ...
        self._health_budget = health_budget  # ... as often as this share of the run's time allows; both None: off
        self._schedule: Optional[EveryN | WithinBudget] = None
        self._root = root or os.getcwd()
        self.health: Any = None  # HealthSampler, from the first step on unless health is off
        self._loss_non_finite_said = False
        self._health_due = False
        self._first_closed_inside = False  # the first step closed inside a forward's hooks: switch at the backward
        self._scaled: Optional[tuple[Any, Any]] = None  # GradScaler.scale's last (output, loss)
        self._flagged: dict[str, tuple[str, ...]] = {}
        self._trained_roots: set[int] = set()
        self._started = started
        self._override = samples_per_step
        self.engine = StepEngine(self._closed)
        self.memory = MemoryReader()
        self._waiting: deque[Segment] = deque()  # closed, their CUDA losses not yet read
        self._pending_events: list[Any] = []
        self._handles: list[Any] = []
        self._global_forward: list[Any] = []
        self._discovering = True  # the outermost modules are looked for (the first step, or after a new model)
        self._roots: dict[int, Any] = {}  # id -> weakref of the outermost modules seen
        self._hooked_roots: weakref.WeakSet[Any] = weakref.WeakSet()  # those with hooks of their own
        self._hooked_params: set[int] = set()  # their parameters' ids
        self._depth = 0
        self._outer_phase: list[str] = []
        self._samples_said = samples_per_step is not None
        self._model_call = ModelCalls()
        self._last_batch: Callable[[], Any] = lambda: None  # a weak reference to the last batch noted
        self._outermost = OutermostSteps()  # a subclass's super().step() runs the hooks twice a step
        self._samples_in_kwargs = False  # the outermost call now running may carry its batch as a keyword
        self._in_backward = False
        self._pid = os.getpid()
        self.emitted = 0

    # --- installing --------------------------------------------------------------------------------

    def install(self) -> None:
        self._handles += [register_optimizer_step_pre_hook(self._optimizer_pre),
                          register_optimizer_step_post_hook(self._optimizer_post)]
        wrap_optimizer_init(self._optimizer_built)
        wrap_zero_grad(self.engine.grads_zeroed)  # (a forked DataLoader worker's engine is a copy: it sends nothing)
        self._wrap_backward()
        wrap_grad_scaler(lambda: self.engine.optimizer_steps, self._scaler_skipped, self._loss_scaled)
        self._install_global_forward()
        if self._override is not None:
            self._send(ev.SamplesFrom(module=None, tensor=None, dim=None, override=self._override))

    def _install_global_forward(self) -> None:
        self._global_forward = [
            nn_module.register_module_forward_pre_hook(self._global_pre),
            nn_module.register_module_forward_hook(self._global_post, with_kwargs=True, always_call=True)]

    def _optimizer_built(self, optimizer: Any) -> None:
        parameters = frozenset(id(p) for group in optimizer.param_groups for p in group["params"])
        self.engine.optimizer_built(id(optimizer), parameters)
        weakref.finalize(optimizer, self.engine.optimizer_gone, id(optimizer)).atexit = False  # not before finish
        if not self._discovering and not parameters <= self._hooked_params:
            # After the first step, for a model the hooks have not seen (a fresh one per fold): find the
            # outermost modules again, as in the first step, until the next step closes.  Health goes to the
            # roots trained from now on (not in this step: the sampler there is the old model's).
            self._trained_roots, self._discovering = set(), True
            if not self._global_forward:
                self._install_global_forward()
            if self.health is not None:
                self.health.due = None

    def _scaler_skipped(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if current_pid() == self._pid:
            self._optimizer_pre(optimizer, args, kwargs)
            self._optimizer_post(optimizer, args, kwargs)

    def _loss_scaled(self, scaled: Any, loss: Any) -> None:
        self._scaled = (scaled, loss)

    def _wrap_backward(self) -> None:
        autograd = torch.autograd
        hooks = self

        def wrap(original: Callable[..., Any], losses_of: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if hooks._in_backward or current_pid() != hooks._pid or tracing():
                    return original(*args, **kwargs)  # (torch.compile's AOT autograd tracing its backward)
                hooks._in_backward = True
                try:
                    hooks._backward_begins(losses_of(*args, **kwargs), original is backward)
                    result = original(*args, **kwargs)
                    if original is backward and hooks.health is not None and hooks.engine.by_hand:
                        hooks._health_guarded(hooks.health.backward_ended)
                    return result
                finally:
                    hooks.engine.leave(BACKWARD)
                    hooks._in_backward = False
            return wrapper

        backward = autograd.backward  # .grad is what it fills (autograd.grad returns the gradients)
        autograd.backward = wrap(backward, lambda tensors=None, *args, **kwargs: tensors)
        autograd.grad = wrap(autograd.grad, lambda outputs=None, *args, **kwargs: outputs)

    def _first_step_closed(self) -> None:
        self._first_closed_inside = False
        self._watch_roots_only()
        self._health_due = bool(self._health_every) or self._health_budget is not None

    def _backward_begins(self, tensors: Any, applied: bool) -> None:
        if self._first_closed_inside:
            self._first_step_closed()
        if self._health_due and (self.health is None or self.health.sampling is None):
            # Here, not where the first step closed: that is inside torch's loop over the optimizer hooks (or a
            # module's), which attaching the publishers would change under it.  A model seen after the first step:
            # health moves to the roots trained now, once the old sampler's step is over (inside backward's own
            # dispatch its outside check is off the stack, to be put back after: it could not leave).
            self._health_due = False
            if self.health is not None:
                self.health.cancel()
                self.health = None
            self._start_health()
        if self.health is not None and self.health.due is not None:  # a step with no forward of the model's
            self._health_guarded(self.health.training_begins)
        self.engine.enter(BACKWARD)
        for tensor in tensors if isinstance(tensors, (list, tuple)) else (tensors,):
            if self._scaled is not None and tensor is self._scaled[0]:
                tensor = self._scaled[1]
                self._scaled = None
            loss = read_loss(tensor)
            if loss is not None:
                self.engine.note_loss(loss, applied)

    # --- optimizer ---------------------------------------------------------------------------------

    def _optimizer_pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._outermost.begins(optimizer):
            self.engine.optimizer_stepping(id(optimizer))
            self.engine.enter(OPTIMIZER)

    def _optimizer_post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._outermost.ends(optimizer):
            self.engine.leave(OPTIMIZER)
            self.engine.alive.add(id(optimizer))
            self.engine.optimizer_stepped(id(optimizer))

    # --- forward -----------------------------------------------------------------------------------

    def _global_pre(self, module: Any, args: Any) -> None:
        self._depth += 1
        if self._depth == 1 and self._outer_begins(module, args, None) and module not in self._hooked_roots:
            self._roots[id(module)] = weakref.ref(module)  # (an id a freed root had is another module's now)

    def _global_post(self, module: Any, args: Any, *rest: Any) -> None:  # a forward that raised: no kwargs given
        self._outer_post(module, args, rest[0] if len(rest) == 2 else {}, rest[-1])

    def _outer_post(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if self._depth == 1:
            if self._samples_in_kwargs:  # torch gives a global pre-hook no kwargs, its post-hook them
                self._samples_in_kwargs = False
                found = first_batch_tensor((), kwargs)
                if found is not None and self.engine.wants_samples():
                    self._note_samples(module, found)
            self._outer_ends()
        self._depth = max(0, self._depth - 1)

    def _root_pre(self, module: Any, args: Any, kwargs: Any) -> None:
        self._depth += 1
        if self._depth == 1:
            self._outer_begins(module, args, kwargs)

    def _outer_begins(self, module: Any, args: Any, kwargs: Optional[dict[str, Any]]) -> bool:
        """An outermost call begins; False where it is not the model's in this process, or it is a recompute
        inside backward (activation checkpointing: backward's time)."""
        if (current_pid() != self._pid or torch._C._current_graph_task_id() >= 0
                or not self._model_call(module, args, kwargs)):
            self._outer_phase.append("")  # a DataLoader worker's; a transform on the data: neither a pass nor timed
            return False
        phase = FORWARD if torch.is_grad_enabled() else EVALUATION
        if phase == FORWARD and self._discovering:
            self._trained_roots.add(id(module))
        self._outer_phase.append(phase)
        self.engine.enter(phase)
        if phase == FORWARD and self.health is not None and self.health.due is not None:
            self._health_guarded(self.health.training_begins)
        if phase == FORWARD and self._override is None and self.engine.wants_samples():
            found = first_batch_tensor(args, kwargs)
            if found is not None:
                self._note_samples(module, found)
            elif kwargs is None:  # the first step's global hooks: a model called with keywords (HF's model(**batch))
                self._samples_in_kwargs = True
        return True

    def _note_samples(self, module: Any, found: tuple[str, Any]) -> None:
        where, tensor = found  # the same tensor again (SAM's second pass over its batch) is not another batch
        self.engine.note_samples(int(tensor.shape[0]), repeat=self._last_batch() is tensor)
        self._last_batch = weakref.ref(tensor)
        if not self._samples_said:
            self._samples_said = True
            self._send(ev.SamplesFrom(module=type(module).__name__, tensor=where, dim=0))

    def _outer_ends(self) -> None:
        phase = self._outer_phase.pop() if self._outer_phase else ""
        if phase:
            self.engine.leave(phase)

    def _watch_roots_only(self) -> None:
        """After the first step: hooks on the outermost modules alone (the global ones cost every layer).  Again
        after an optimizer over a model not seen: its roots join, and health moves to the roots now trained."""
        self._discovering, keep_global = False, False
        for ref in self._roots.values():
            module = ref()
            if module is not None and module not in self._hooked_roots:
                self._hooked_params.update(id(p) for p in module.parameters())
                try:
                    pre = forward_pre_hook(module, self._root_pre, with_kwargs=True)
                except RuntimeError:  # a ScriptModule takes no hooks: the global ones stay (its layers run unseen)
                    keep_global = True
                    continue
                self._hooked_roots.add(module)
                self._handles += [pre, forward_hook(module, self._outer_post, with_kwargs=True, always_call=True)]
        if not keep_global:
            for handle in self._global_forward:
                handle.remove()
            self._global_forward = []

    # --- closed steps ------------------------------------------------------------------------------

    def _closed(self, segment: Segment) -> None:
        if self._discovering:
            if self._depth == 0:
                self._first_step_closed()
            else:  # updating by hand, a step closes as the next forward begins: not inside a module's hooks
                self._first_closed_inside = True
        if self._override is not None:
            segment.samples = self._override
        segment.health = self.health is not None and self.health.sampling is not None
        self._waiting.append(segment)
        self._send_ready(wait=False)
        if self.health is not None and self._schedule is not None:
            self._health_guarded(self._sample_health, segment, self.health, self._schedule)

    def _health_guarded(self, call: Callable[..., None], *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:  # noqa: BLE001 - health is a bonus: the script must not pay for its failure
            # Not detached: this runs inside torch's loop over the optimizer's (or a module's) hooks, which
            # detaching would change under it; outside a sampled step the publishers' hooks return at once.
            self.health = None
            print(f"skyline-tui: warning: per-layer health is off from step {self.engine.steps} of this run "
                  f"({type(exc).__name__}: {exc})", file=sys.stderr)

    def _sample_health(self, segment: Segment, health: Any, schedule: EveryN | WithinBudget) -> None:
        """The step that closed was sampled: send what it saw; then whether the next one is sampled."""
        index = self.engine.steps
        began = time.perf_counter()
        sampled = health.step_ends(index)
        if sampled is not None:
            values, found = sampled
            judged = health.health() if found is not None or health.judge_now() else None
            if judged is not None:
                self._flagged = {row.module: tuple(f.kind for f in row.flags) for row in judged.modules if row.flags}
            self._send(ev.HealthSampled(step=index, values=values, flagged=self._flagged))
            if judged is not None:
                self._send(ev.HealthJudged(step=index, health=judged))
            if found is not None:
                self._send(ev.NonFiniteSeen(step=index, where=found, message=found.message))
        now = time.perf_counter()
        schedule.step_closed(segment.end - segment.start, segment.health, now - began if sampled is not None else 0.0)
        health.step_begins(index + 1, schedule.due(index + 1, now) and not self._health_due)

    def _start_health(self) -> None:
        from skyline_tui.run.health import HealthSampler

        roots = [module for key, ref in self._roots.items()
                 if key in self._trained_roots and (module := ref()) is not None]
        try:
            self.health = HealthSampler(roots, self._root)
            self.health.attach()
            self._schedule = schedule(self._health_every, self._health_budget, time.perf_counter())
        except Exception as exc:  # noqa: BLE001 - health is a bonus; the steps go on
            print(f"skyline-tui: warning: per-layer health is off for this run ({type(exc).__name__}: {exc})",
                  file=sys.stderr)

    def _send_ready(self, wait: bool) -> None:
        while self._waiting:
            segment = self._waiting[0]
            if not wait and not all(not isinstance(loss, PendingLoss) or loss.ready() for loss in segment.losses):
                return
            self._waiting.popleft()
            self._send_step(self._step_record(segment), segment.end)
            self._send_pending()  # a loss that was not finite is said after its step

    def _send_pending(self) -> None:
        if self._pending_events:
            for event in self._pending_events:
                self._send(event)
            self._pending_events = []

    def _step_record(self, segment: Segment) -> tuple[float, ...]:
        """The step's numbers in ``events.PACKED_STEP_FIELDS`` order, then its losses' count and losses."""
        self.emitted += 1
        finite, bad = [], 0
        for loss in segment.losses:
            value = loss.value() if isinstance(loss, PendingLoss) else loss
            if value is not None and not math.isfinite(value):
                bad += 1
                value = None
            finite.append(NAN if value is None else value)
        seconds = segment.seconds
        allocated = reserved = peak = rss = NAN
        if self.memory.due(segment.end):
            cuda = self.memory.cuda()
            rss = none_as_nan(self.memory.rss())
            if cuda[0] is not None:
                allocated, reserved, peak = cuda  # type: ignore[assignment]
                self.memory.note_peaks(int(peak), int(reserved))
        if bad and not self._loss_non_finite_said:
            self._loss_non_finite_said = True
            hint = "" if self._health_every == 1 else " (--health-every 1 locates the layer)"
            self._pending_events.append(ev.NonFiniteSeen(
                step=self.emitted, where=None, message=f"the loss was not finite first at step {self.emitted}{hint}"))
        forward, backward = seconds[FORWARD] * 1e3, seconds[BACKWARD] * 1e3
        optimizer, evaluation = seconds[OPTIMIZER] * 1e3, seconds[EVALUATION] * 1e3
        wall_ms = (segment.end - segment.start) * 1e3
        other = max(0.0, wall_ms - forward - backward - optimizer - evaluation)
        terms = segment.loss_terms()  # a term not finite makes the sum NaN: the step's loss is not finite
        return (self.emitted, round(segment.end - self._started, 6), wall_ms, forward, backward, optimizer,
                evaluation, other, none_as_nan(segment.samples), bad, allocated, reserved, peak, rss,
                1.0 if segment.health else 0.0, finite[terms[0]] if len(terms) == 1 else
                sum(finite[i] for i in terms) if terms else NAN, len(terms), len(finite), *finite)

    def finish(self) -> None:
        """The script is over: close what can be closed and send every step still waiting for its loss."""
        if self.health is not None:
            self.health.cancel()
            if self.health.samples:
                self._send(ev.HealthJudged(step=self.engine.steps, health=self.health.health()))
        self.engine.finish()
        if self._waiting and torch.cuda.is_initialized():
            try:
                torch.cuda.synchronize()
            except Exception:  # noqa: BLE001 - a device in an error state: the losses are lost, not the steps
                for segment in self._waiting:
                    segment.losses = [None if isinstance(loss, PendingLoss) else loss for loss in segment.losses]
        self._send_ready(wait=True)
