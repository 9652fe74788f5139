"""The run-time breakdown: where one real training iteration spends its time, by line and by module.

The user's iteration runs unchanged under the instruments of ``attribution`` (a torch function mode,
autograd node hooks, module and optimizer hooks): one instrumented warm-up, then
``config.breakdown_iterations`` measured iterations, averaged.  The rows add up by construction:

    profiled_iteration_ms = sum(line forward + backward) + optimizer_ms + other_ms

where every millisecond is charged at most once (a call is timed at its outermost torch function; a
backward node is timed by its own hooks; optimizer internals only as ``optimizer_ms``), and ``other_ms``
is what no row claimed: Python between calls, gradient accumulation, the instruments' own overhead.
Module times are a second view of the same line charges (each call also names the module running).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Optional

import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.attribution import (BACKWARD, FORWARD, ITERATION, OPTIMIZER, LineAttributionMode, Ledger,
                                              ModuleTracker, charge_totals, clock_for, module_parent,
                                              on_device)
from skyline_tui.profiler.compiled import block_notes, timed_modules
from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.profiler.optimizer_watch import OptimizerWatch
from skyline_tui.profiler.workload import Workload
from skyline_tui.report import Breakdown, LineTiming, ModuleTiming

ClockFactory = Callable[[torch.device, Ledger], Any]
WARMUP_ITERATIONS = 1  # at least: the first instrumented iteration pays for the instruments' caches


class InstrumentedIterations:
    """Runs the workload's iteration under every instrument and leaves the milliseconds in a ledger.

    All hooks and the mode are installed only inside ``run`` and removed on the way out, exceptions
    included: later phases reuse the model.
    """

    def __init__(self, work: Workload, clock_factory: ClockFactory = clock_for):
        self.work = work
        self.files: ProjectFiles = work.entry.files
        self.ledger = Ledger()
        # The hook for other recorders (profiler/spans.py): every charge goes through this clock.
        self.clock = clock_factory(work.device, self.ledger)
        self.modules = ModuleTracker(work.model, self.files)
        self.mode = LineAttributionMode(self.files, self.clock, self.modules)
        self._step_started: list[Any] = []
        self._step_popped: list[bool] = []  # per step under way: whether it took the mode off the stack

    def _optimizer_step_start(self, optimizer: Any) -> None:
        self.mode.paused = True
        # The step's internals are the optimizer's row: take the mode off the torch-function stack, so
        # the step's many small calls do not each pay a trip through it (transformer sample: 2.15 ms per
        # step with the mode merely paused, against 1.41 ms plain).  Only our own mode, and only when it
        # is on top: a user's mode or a tensor subclass keeps working.
        depth = torch._C._len_torch_function_stack()
        popped = depth > 0 and torch._C._get_function_stack_at(depth - 1) is self.mode
        if popped:
            torch._C._pop_torch_function_stack()
        self._step_popped.append(popped)
        self._step_started.append(self.clock.start())

    def _optimizer_step_end(self, optimizer: Any) -> None:
        if self._step_started:
            self.clock.stop(self._step_started.pop(), (OPTIMIZER, None, None))
        if self._step_popped and self._step_popped.pop():
            torch._C._push_on_torch_function_stack(self.mode)
        self.mode.paused = bool(self._step_started)

    def _leave_steps(self) -> None:
        """A step that raised never reached its post-hook: put the mode back before it is exited."""
        while self._step_popped:
            if self._step_popped.pop():
                torch._C._push_on_torch_function_stack(self.mode)
        self._step_started.clear()
        self.mode.paused = False

    def run(self, warmup: int, measured: int, warmup_s: float = 0.0) -> None:
        """``warmup`` instrumented iterations at least, more until ``warmup_s`` has passed; then the
        ledger starts afresh for ``measured`` iterations."""
        watch = OptimizerWatch(on_step_start=self._optimizer_step_start, on_step_end=self._optimizer_step_end)
        with watch, self.modules:
            try:
                warm_until = time.perf_counter() + warmup_s
                done = 0
                while done < warmup or time.perf_counter() < warm_until:
                    self._one_iteration()
                    done += 1
                self.ledger.clear()
                for _ in range(measured):
                    self._one_iteration()
            finally:
                self._step_started.clear()
                self.mode.paused = False
                self.mode.reset()

    def _one_iteration(self) -> None:
        work, clock = self.work, self.clock
        try:
            with on_device(work.device):
                started = clock.start()
                try:
                    with self.mode:
                        try:
                            work.iteration(*work.inputs)
                        finally:
                            self._leave_steps()
                except BaseException:
                    # After a sticky CUDA error (a device-side assert...) every CUDA call fails again,
                    # the flush's synchronise included: the user's error is the one to report.
                    with contextlib.suppress(Exception):
                        self._end_iteration(started)
                    raise
                self._end_iteration(started)
        finally:
            # Per-iteration state: autograd nodes die with the iteration; an exception may leave the
            # module stack or the optimizer flag unbalanced.
            self.mode.reset()
            self.modules.reset()

    def _end_iteration(self, started: Any) -> None:
        self.clock.stop(started, (ITERATION, None, None))
        self.clock.flush()


def measure_breakdown(work: Workload, config: ProfileConfig) -> Breakdown:
    iterations = max(1, config.breakdown_iterations)
    instruments = InstrumentedIterations(work)
    work.run_user(lambda: instruments.run(WARMUP_ITERATIONS, iterations, config.breakdown_warmup_s), "iteration")
    return build_breakdown(instruments, iterations)


def build_breakdown(instruments: InstrumentedIterations, iterations: int) -> Breakdown:
    ledger, files = instruments.ledger, instruments.files
    per_iteration = 1.0 / iterations
    forward_lines, forward_modules = charge_totals(ledger, FORWARD)
    backward_lines, backward_modules = charge_totals(ledger, BACKWARD)

    lines = []
    for where in set(forward_lines) | set(backward_lines):
        if where is None:  # no project frame on the stack: nothing to point at, so it is "other"
            continue
        rel, line = where
        lines.append(LineTiming(file=rel, line=line, code=files.source_line(rel, line),
                                forward_ms=forward_lines.get(where, 0.0) * per_iteration,
                                backward_ms=backward_lines.get(where, 0.0) * per_iteration))
    lines.sort(key=lambda row: (-row.total_ms, row.file, row.line))

    modules = module_tree(instruments.work.model, instruments.modules, forward_modules, backward_modules,
                          per_iteration)
    iteration_ms = ledger.ms.get((ITERATION, None, None), 0.0) * per_iteration
    optimizer_ms = ledger.ms.get((OPTIMIZER, None, None), 0.0) * per_iteration
    attributed = sum(row.total_ms for row in lines) + optimizer_ms
    return Breakdown(profiled_iteration_ms=iteration_ms, optimizer_ms=optimizer_ms,
                     other_ms=max(0.0, iteration_ms - attributed), iterations_profiled=iterations,
                     lines=tuple(lines), modules=tuple(modules), notes=block_notes(instruments.work.model))


def module_tree(model: Any, tracker: ModuleTracker, forward_self: dict[Optional[str], float],
                backward_self: dict[Optional[str], float], scale: float) -> list[ModuleTiming]:
    """Pre-order rows; a module's totals are its own time plus its descendants'."""
    # One row a name (a compiled module and its wrapper share one, under the module's own type).
    named = list(dict(timed_modules(model)).items())
    forward_total = {path: forward_self.get(path, 0.0) * scale for path, _ in named}
    backward_total = {path: backward_self.get(path, 0.0) * scale for path, _ in named}
    for path, _ in reversed(named):  # children come after their parent in pre-order
        parent = module_parent(path)
        if parent is not None and parent in forward_total:
            forward_total[parent] += forward_total[path]
            backward_total[parent] += backward_total[path]
    rows = []
    for path, module in named:
        site = tracker.call_sites.get(path)
        rows.append(ModuleTiming(path=path, type=type(module).__name__,
                                 forward_ms=forward_total[path], backward_ms=backward_total[path],
                                 self_forward_ms=forward_self.get(path, 0.0) * scale,
                                 self_backward_ms=backward_self.get(path, 0.0) * scale,
                                 file=site[0] if site else None, line=site[1] if site else None))
    return rows
