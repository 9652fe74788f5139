"""Charging the real iteration's work to project lines and modules, forward and backward.

Three instruments run together while the user's iteration runs unchanged:

- ``LineAttributionMode``, a ``TorchFunctionMode``: every torch call (``torch.matmul``, ``F.gelu``,
  ``x @ w``, tensor methods, module internals such as ``F.linear``) is timed and charged to the innermost
  project frame's line and to the module whose forward is running.  The mode is not re-entered by calls
  made inside a torch function, so composite ops are timed once, at the outermost call.
- Autograd node hooks: the nodes each call creates (its outputs' ``grad_fn`` and whatever new nodes lie
  behind it) are tagged with that call's (line, module) through a pre/post hook pair, so backward work is
  timed as the engine runs it and charged to the forward line that created it.
- Global module forward hooks keep a stack of the model's module paths and note where each module is
  called from.
- A custom ``torch.autograd.Function`` (and ``checkpoint``, which is one) is not a torch call, so while
  the mode is active ``Function.apply`` is wrapped: the node it creates is tagged with the line that
  called ``apply`` (without that, its backward would be adopted by the next line that uses its output),
  and the whole call is timed as forward work of that line.  Only its *self* time is charged there: the
  torch calls inside its ``forward`` are charged where the mode finds them (their own lines when the
  Function is project code, which is where a user looks for a slow op of their own kernel; the apply
  line when it is a library's), and each such charge is taken off the enclosing apply's.  What remains
  on the apply line is the forward's own Python (a sleep, numpy, loops), which would otherwise be
  "other".  Nested applies work the same way: each charge is taken off the innermost open apply only.

What must not be charged to a line's forward: ``loss.backward()`` (``Tensor.backward`` goes through
``__torch_function__``; its work is the nodes') and the optimizer's internals (they are the optimizer's
row, timed by ``OptimizerWatch``).  Those calls pass straight through.

Times come from a ``HostClock`` (``perf_counter_ns``; CPU work is synchronous) or a ``CudaEventClock``
(event pairs resolved after one synchronisation: CUDA work is timed on the device).  Every clock's
``stop(started, key, enclosing=None)`` charges the interval to ``key`` and, when ``enclosing`` is given,
takes it off that key (the self time of the interval it lies in), once the interval is known.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import defaultdict
from typing import Any, Callable, Iterable, Optional

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

from skyline_tui.profiler.compiled import is_compiling, timed_modules
from skyline_tui.profiler.custom_functions import CustomFunctions
from skyline_tui.profiler.frames import ProjectFiles

Location = Optional[tuple[str, int]]  # (project-relative file, line)
FORWARD, BACKWARD, OPTIMIZER, ITERATION = "forward", "backward", "optimizer", "iteration"
ChargeKey = tuple[str, Location, Optional[str]]  # (what, line, module path)


def _pass_through_calls() -> frozenset[Any]:
    """Calls that are not forward work of the calling line: backward entry points (their autograd nodes
    are timed instead) and ``record_function`` annotations (``Optimizer.step`` opens one before its
    pre-hooks run, which would otherwise charge the step's line)."""
    calls: set[Any] = {torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad}
    for name in ("_record_function_enter", "_record_function_enter_new", "_record_function_exit"):
        packet = getattr(torch.ops.profiler, name, None)
        if packet is None:
            continue
        calls.add(packet)
        for overload in packet.overloads():
            calls.add(getattr(packet, overload))
    return frozenset(calls)


_PASS_THROUGH = _pass_through_calls()


class Ledger:
    """Milliseconds per (what, line, module path)."""

    def __init__(self) -> None:
        self.ms: defaultdict[ChargeKey, float] = defaultdict(float)

    def add(self, key: ChargeKey, ms: float) -> None:
        self.ms[key] += ms

    def charge(self, key: ChargeKey, ms: float, enclosing: Optional[ChargeKey]) -> None:
        """``ms`` to ``key``; taken off ``enclosing``, an interval this one lies in (its self time)."""
        self.ms[key] += ms
        if enclosing is not None:
            self.ms[enclosing] -= ms

    def clear(self) -> None:
        self.ms.clear()


class HostClock:
    """CPU work runs synchronously on the calling thread: wall time around it is its run time."""

    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    def start(self) -> Any:
        return time.perf_counter_ns()

    def stop(self, started: Any, key: ChargeKey, enclosing: Optional[ChargeKey] = None) -> None:
        self._ledger.charge(key, (time.perf_counter_ns() - started) / 1e6, enclosing)

    def flush(self) -> None:
        pass


class EventPool:
    """Reusable objects (CUDA events) for one device, safe to share between the two threads autograd uses
    (the caller's, and the device's backward thread, where node hooks run).  ``take`` never checks and
    then pops: between the two, the other thread may have emptied the pool."""

    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._free: list[Any] = []
        self._lock = threading.Lock()

    def take(self) -> Any:
        with self._lock:
            if self._free:
                return self._free.pop()
        return self._make()  # outside the lock: creating an event costs microseconds

    def give_back(self, items: Iterable[Any]) -> None:
        with self._lock:
            self._free.extend(items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._free)


# One pool per CUDA device index: an event belongs to the device it was first recorded on, and recording
# it on another device's stream is an error (inside an autograd hook, an error in the user's backward).
_EVENT_POOLS: dict[int, EventPool] = {}
_EVENT_POOLS_LOCK = threading.Lock()


def event_pool(device_index: int) -> EventPool:
    with _EVENT_POOLS_LOCK:
        pool = _EVENT_POOLS.get(device_index)
        if pool is None:
            pool = _EVENT_POOLS[device_index] = EventPool(lambda: torch.cuda.Event(enable_timing=True))
        return pool


def cuda_device_index(device: torch.device) -> int:
    """``cuda`` without an index means the current device."""
    return device.index if device.index is not None else torch.cuda.current_device()


class CudaEventClock:
    """Kernels run asynchronously: bracket each call with events on the model's device's current stream,
    read them after one synchronisation of that device per iteration.  Explicitly that device: backward
    hooks run on autograd's thread for the device, and the caller's current device may be another GPU.
    Events are pooled (per device) because creating one costs microseconds."""

    def __init__(self, ledger: Ledger, device: torch.device):
        self._ledger = ledger
        self._device = torch.device("cuda", cuda_device_index(device))
        self._pool = event_pool(self._device.index or 0)
        # list.append is atomic: both threads add
        self._pending: list[tuple[Any, Any, ChargeKey, Optional[ChargeKey]]] = []

    def _recorded(self) -> Any:
        event = self._pool.take()
        event.record(torch.cuda.current_stream(self._device))
        return event

    def start(self) -> Any:
        return self._recorded()

    def stop(self, started: Any, key: ChargeKey, enclosing: Optional[ChargeKey] = None) -> None:
        self._pending.append((started, self._recorded(), key, enclosing))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        # If this raises (a sticky CUDA error) the pending events are dropped with it, not reused.
        torch.cuda.synchronize(self._device)
        for start, end, key, enclosing in pending:
            self._ledger.charge(key, start.elapsed_time(end), enclosing)
        self._pool.give_back(event for start, end, _, _ in pending for event in (start, end))


class ModuleTracker:
    """Which of the model's modules is running, and the project line each one is called from."""

    def __init__(self, model: torch.nn.Module, files: ProjectFiles):
        self._files = files
        # Inside a compiled graph, modules are not seen one by one: the compiled call is one block.
        self.paths: dict[int, str] = {id(module): path for path, module in timed_modules(model)}
        self.call_sites: dict[str, tuple[str, int]] = {}
        self.stack: list[Optional[str]] = [None]  # None: outside the model (e.g. the loss)
        self._handles: list[Any] = []

    @property
    def current(self) -> Optional[str]:
        return self.stack[-1]

    def _pre(self, module: torch.nn.Module, args: Any) -> None:
        if is_compiling():
            return
        path = self.paths.get(id(module))
        if path is None:  # not part of the model (a loss module...): its ops stay with the caller
            self.stack.append(self.stack[-1])
            return
        self.stack.append(path)
        if path not in self.call_sites:
            site = self._files.innermost(sys._getframe(1))
            if site is not None:
                self.call_sites[path] = site

    def _post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if len(self.stack) > 1 and not is_compiling():
            self.stack.pop()

    def reset(self) -> None:
        """Forget a stack left unbalanced by an exception inside a forward."""
        del self.stack[1:]

    def __enter__(self) -> "ModuleTracker":
        self._handles = [register_module_forward_pre_hook(self._pre), register_module_forward_hook(self._post)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.reset()


class LineAttributionMode(TorchFunctionMode):
    """Times every torch call from project code and tags the autograd nodes it creates."""

    def __init__(self, files: ProjectFiles, clock: Any, modules: ModuleTracker):
        super().__init__()
        self._innermost = files.innermost
        self._clock = clock
        self._modules = modules
        self.paused = False  # True while the optimizer steps: its internals are its own row
        # Nodes tagged during this iteration.  Holding them keeps their ids unique until reset(); the
        # engine frees their saved tensors after backward, so only the small node objects are kept.
        self._tagged: dict[int, Any] = {}
        # Forward keys of the custom Function applies under way, innermost last: a charge made while one
        # is open is taken off it.  Only the thread running the forward pushes; backward hooks (autograd's
        # device thread on CUDA) only read it, and it is empty then unless a forward called into autograd.
        self._applies: list[ChargeKey] = []

    def reset(self) -> None:
        self._tagged.clear()
        self._applies.clear()

    def __enter__(self) -> "LineAttributionMode":
        CustomFunctions.install(self)
        try:
            super().__enter__()  # type: ignore[no-untyped-call]  # torch leaves TorchFunctionMode's untyped
            return self  # what TorchFunctionMode.__enter__ returns
        except BaseException:
            CustomFunctions.uninstall()
            raise

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)  # type: ignore[no-untyped-call]  # torch leaves TorchFunctionMode's untyped
        finally:
            CustomFunctions.uninstall()

    def _on_torch_function_stack(self) -> bool:
        """False while a torch call this mode times is running (the stack is emptied for it), during an
        optimizer step (taken off) and in backward (started from a pass-through call)."""
        stack_at = torch._C._get_function_stack_at
        return any(stack_at(i) is self for i in range(torch._C._len_torch_function_stack()))

    def apply_custom_function(self, apply: Callable[..., Any], klass: Any, args: Any, kwargs: Any,
                              caller: Any) -> Any:
        """Runs ``klass.apply(*args, **kwargs)``, called at ``caller`` (a frame): its self time is forward
        work of the caller's line, and the node it creates is that line's backward work."""
        if self.paused:
            return apply(klass, *args, **kwargs)
        where = self._innermost(caller)
        module = self._modules.stack[-1]
        if not self._on_torch_function_stack():
            # Inside a torch call this mode already times (or in backward, timed by its nodes): timing
            # the apply as well would count its milliseconds twice.
            out = apply(klass, *args, **kwargs)
        else:
            key: ChargeKey = (FORWARD, where, module)
            applies = self._applies
            enclosing = applies[-1] if applies else None
            clock = self._clock
            applies.append(key)
            started = clock.start()
            try:
                out = apply(klass, *args, **kwargs)
            finally:
                applies.pop()
            # Not in the finally: after a sticky CUDA error, recording an event would raise again and
            # hide the user's own error.
            clock.stop(started, key, enclosing)
        if where is not None:
            self._tag_outputs(out, (BACKWARD, where, module))
        return out

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if kwargs is None:
            kwargs = {}
        if self.paused or func in _PASS_THROUGH or is_compiling():
            return func(*args, **kwargs)
        where = self._innermost(sys._getframe(1))
        module = self._modules.stack[-1]
        if getattr(func, "__name__", None) == "__get__":
            # A tensor attribute (x.shape, x.grad, x.T): metadata or a view, no work worth two clock
            # readings (two CUDA events).  A view's autograd node still belongs to this line.
            out = func(*args, **kwargs)
        else:
            clock, applies = self._clock, self._applies
            started = clock.start()
            out = func(*args, **kwargs)
            clock.stop(started, (FORWARD, where, module), applies[-1] if applies else None)
        if where is not None:
            # x[i] = y returns None but gives x a new node (CopySlices): that node is this line's work.
            target = args[0] if out is None and args else out
            self._tag_outputs(target, (BACKWARD, where, module))
        return out

    def _tag_outputs(self, out: Any, key: ChargeKey) -> None:
        if isinstance(out, torch.Tensor):
            node = out.grad_fn
            if node is not None and id(node) not in self._tagged:
                self._tag_graph(node, key)
        elif isinstance(out, (tuple, list)):
            for item in out:
                if isinstance(item, torch.Tensor):
                    node = item.grad_fn
                    if node is not None and id(node) not in self._tagged:
                        self._tag_graph(node, key)

    def _tag_graph(self, root: Any, key: ChargeKey) -> None:
        """Tag ``root`` and the untagged nodes behind it: those are the ones this call created."""
        tagged = self._tagged
        todo = [root]
        while todo:
            node = todo.pop()
            tagged[id(node)] = node
            self._time_node(node, key)
            for parent, _ in node.next_functions:
                # AccumulateGrad nodes live as long as their parameter; a hook on one would outlive the
                # iteration, so gradient accumulation stays unattributed ("other").
                if parent is not None and id(parent) not in tagged and type(parent).__name__ != "AccumulateGrad":
                    todo.append(parent)

    def _time_node(self, node: Any, key: ChargeKey) -> None:
        clock, applies = self._clock, self._applies
        started: list[Any] = [None]

        def before(grad_outputs: Any) -> None:
            started[0] = clock.start()

        def after(grad_inputs: Any, grad_outputs: Any) -> None:
            if started[0] is not None:
                # An apply is open only if a custom forward ran autograd (torch.autograd.grad): the node's
                # time is its own line's backward, not also that forward's.
                clock.stop(started[0], key, applies[-1] if applies else None)
                started[0] = None

        node.register_prehook(before)
        node.register_hook(after)


def clock_for(device: torch.device, ledger: Ledger) -> Any:
    return CudaEventClock(ledger, device) if device.type == "cuda" else HostClock(ledger)


def on_device(device: torch.device) -> Any:
    """A context that makes ``device`` current for the iteration (so the user's ``torch.cuda.*`` calls
    without a device, and new CUDA tensors, go to the model's GPU, not to GPU 0); a no-op off CUDA."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def module_parent(path: str) -> Optional[str]:
    if path == "":
        return None
    return path.rsplit(".", 1)[0] if "." in path else ""


def charge_totals(ledger: Ledger, what: str) -> tuple[dict[Location, float], dict[Optional[str], float]]:
    """Per-line and per-module (self) milliseconds for one kind of work."""
    lines: defaultdict[Location, float] = defaultdict(float)
    modules: defaultdict[Optional[str], float] = defaultdict(float)
    for (kind, where, module), ms in ledger.ms.items():
        if kind != what:
            continue
        lines[where] += ms
        modules[module] += ms
    return lines, modules

