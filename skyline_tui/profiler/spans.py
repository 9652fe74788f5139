"""Recording one instrumented iteration as spans, for ``--trace`` (Chrome/Perfetto trace export).

The breakdown's instruments charge every piece of work through one clock (``start``/``stop(key)``), so a
clock that also keeps each interval sees exactly what the breakdown sums: each torch call charged to a
project line, each autograd node charged to the line that created it, the optimizer step and the
iteration.  ``SpanClock`` is that clock, plugged in through ``InstrumentedIterations(clock_factory=...)``;
module forwards are added by a pair of global module hooks (``ModuleSpans``) timed by the same clock, and
the memory counter is sampled at module, step and iteration boundaries.

A custom autograd Function's apply is one span around the torch calls inside its forward, as a module's
is: the trace shows durations with their children (Perfetto's "self time" is what the breakdown charges
the apply line), while the ledger gets the self time directly (``enclosing`` in ``stop``).

With ``--trace`` the breakdown itself is measured through this clock (keeping a record costs a list append
next to the instruments' microseconds per call), and of its measured iterations the one whose length is
closest to their mean is exported: the trace shows a typical iteration of the very run the breakdown
averages, so its spans agree with the breakdown's rows (exactly, with ``breakdown_iterations=1``).  On CUDA
the spans are device times (events, resolved after the iteration) laid on the host clock from the
iteration's first event; memory samples are host times.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Optional

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from skyline_tui.config import ProfileConfig
from skyline_tui.export.report_json import write_text
from skyline_tui.export.trace import MemorySample, Span, chrome_trace_json
from skyline_tui.profiler.attribution import BACKWARD, FORWARD, ITERATION, OPTIMIZER, ChargeKey, Ledger
from skyline_tui.profiler.breakdown import WARMUP_ITERATIONS, InstrumentedIterations, build_breakdown
from skyline_tui.profiler.compiled import is_compiling, named_modules, timed_modules
from skyline_tui.profiler.errors import fail
from skyline_tui.profiler.workload import Workload
from skyline_tui.report import Breakdown

MODULE = "module"
Record = tuple[int, int, ChargeKey, int]  # (start ns, end ns, what, thread id), host clock


class MemoryProbe:
    """Bytes in use now: the CUDA allocator's count, else the process's resident set (the CPU allocator
    keeps no statistic; /proc/self/statm is read through one open descriptor, a few microseconds)."""

    def __init__(self, device: torch.device):
        self._device = device
        self._statm: Optional[int] = None
        if device.type == "cuda":
            self.source = "torch.cuda.memory_allocated"
        else:
            try:
                self._statm = os.open("/proc/self/statm", os.O_RDONLY)
                self.source = "process resident set size (/proc/self/statm)"
            except OSError:
                self.source = ""
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __call__(self) -> Optional[int]:
        if self._device.type == "cuda":
            return int(torch.cuda.memory_allocated(self._device))
        if self._statm is None:
            return None
        fields = os.pread(self._statm, 128, 0).split()
        return int(fields[1]) * self._page

    def close(self) -> None:
        if self._statm is not None:
            os.close(self._statm)
            self._statm = None


class SpanClock:
    """Charges the ledger like the breakdown's own clocks and keeps every interval as a record."""

    def __init__(self, device: torch.device, ledger: Ledger, probe: MemoryProbe):
        self._ledger = ledger
        self._cuda = device.type == "cuda"
        self._device = device
        self.probe = probe
        self.records: list[Record] = []
        self.samples: list[tuple[int, int]] = []  # (host ns, bytes)
        self._pending: list[tuple[Any, Any, ChargeKey, Optional[ChargeKey], int]] = []
        self._reference: Optional[tuple[Any, int]] = None  # CUDA: (first event, host ns when recorded)
        self._begun = False

    def sample(self) -> None:
        value = self.probe()
        if value is not None:
            self.samples.append((time.perf_counter_ns(), value))

    def start(self) -> Any:
        if not self._begun:  # the first start of an iteration is the iteration's own
            self._begun = True
            self.sample()
        if not self._cuda:
            return time.perf_counter_ns()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        if self._reference is None:
            self._reference = (event, time.perf_counter_ns())
        return event

    def stop(self, started: Any, key: ChargeKey, enclosing: Optional[ChargeKey] = None) -> None:
        tid = threading.get_native_id()
        if self._cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._pending.append((started, end, key, enclosing, tid))
        else:
            now = time.perf_counter_ns()
            self._ledger.charge(key, (now - started) / 1e6, enclosing)
            self.records.append((started, now, key, tid))
        if key[0] in (OPTIMIZER, ITERATION):
            self.sample()

    def flush(self) -> None:
        if not self._cuda:
            return
        torch.cuda.synchronize(self._device)
        if self._reference is not None:
            first, host_ns = self._reference
            for start, end, key, enclosing, tid in self._pending:
                begin_ms, end_ms = first.elapsed_time(start), first.elapsed_time(end)
                self._ledger.charge(key, end_ms - begin_ms, enclosing)
                self.records.append((host_ns + int(begin_ms * 1e6), host_ns + int(end_ms * 1e6), key, tid))
        self._pending.clear()
        self._reference = None

    def take(self) -> tuple[list[Record], list[tuple[int, int]]]:
        records, samples = self.records, self.samples
        self.records, self.samples = [], []
        self._begun = False
        return records, samples


class ModuleSpans:
    """Global module forward hooks that time each of the model's modules with the span clock."""

    def __init__(self, model: torch.nn.Module, clock: SpanClock):
        self._clock = clock
        self.paths = {id(module): path for path, module in timed_modules(model)}
        self.types = {path: type(module).__name__ for path, module in named_modules(model)}
        self._open: list[tuple[int, Any]] = []
        self._handles: list[Any] = []

    def _pre(self, module: torch.nn.Module, args: Any) -> None:
        if id(module) in self.paths and not is_compiling():
            self._clock.sample()
            self._open.append((id(module), self._clock.start()))

    def _post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if id(module) not in self.paths or is_compiling():
            return
        while self._open:  # a forward that raised inside a child never closed the child's span
            opened, token = self._open.pop()
            if opened == id(module):
                self._clock.stop(token, (MODULE, None, self.paths[opened]))
                break
        self._clock.sample()

    def __enter__(self) -> "ModuleSpans":
        self._handles = [register_module_forward_pre_hook(self._pre), register_module_forward_hook(self._post)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._open.clear()


def measure_breakdown_with_trace(work: Workload, config: ProfileConfig) -> Breakdown:
    """The breakdown, measured as ``measure_breakdown`` does, with every interval kept; then its typical
    measured iteration is written to ``config.trace_path``."""
    assert config.trace_path is not None
    probe = MemoryProbe(work.device)
    clocks: list[SpanClock] = []

    def make_clock(device: torch.device, ledger: Ledger) -> SpanClock:
        clocks.append(SpanClock(device, ledger, probe))
        return clocks[-1]

    iterations = max(1, config.breakdown_iterations)
    instruments = InstrumentedIterations(work, clock_factory=make_clock)
    modules = ModuleSpans(work.model, clocks[0])
    try:
        with modules:
            work.run_user(lambda: instruments.run(WARMUP_ITERATIONS, iterations, config.breakdown_warmup_s),
                          "iteration")
        memory_source = probe.source
    finally:
        probe.close()
    breakdown = build_breakdown(instruments, iterations)
    records, samples = clocks[0].take()
    runs = split_iterations(records, samples)[-iterations:]  # the measured ones, not the warm-up
    chosen = runs[typical([run for run, _ in runs], breakdown.profiled_iteration_ms)]
    spans, memory = to_spans(chosen[0], chosen[1], work, modules)
    _write(work, config, breakdown, spans, memory, memory_source)
    return breakdown


def split_iterations(records: list[Record], samples: list[tuple[int, int]]
                     ) -> list[tuple[list[Record], list[tuple[int, int]]]]:
    """Records and memory samples grouped by the iteration whose interval holds them, in order."""
    bounds = sorted((start, end) for start, end, key, _tid in records if key[0] == ITERATION)
    runs: list[tuple[list[Record], list[tuple[int, int]]]] = []
    for begin, end in bounds:
        runs.append(([r for r in records if begin <= r[0] and r[1] <= end],
                     [m for m in samples if begin - _SAMPLE_SLACK_NS <= m[0] <= end + _SAMPLE_SLACK_NS]))
    return runs


# The iteration's first and last memory samples are read just outside its clock readings.
_SAMPLE_SLACK_NS = 50_000


def typical(runs: list[list[Record]], iteration_ms: float) -> int:
    """The index of the run whose iteration is closest in length to ``iteration_ms``."""
    def length_ms(records: list[Record]) -> float:
        return sum((end - start) / 1e6 for start, end, key, _tid in records if key[0] == ITERATION)
    return min(range(len(runs)), key=lambda i: abs(length_ms(runs[i]) - iteration_ms))


def to_spans(records: list[Record], samples: list[tuple[int, int]], work: Workload,
             modules: ModuleSpans) -> tuple[list[Span], list[MemorySample]]:
    origin = min((start for start, _end, key, _tid in records if key[0] == ITERATION), default=0)
    files = work.entry.files
    spans = []
    for start, end, (what, where, module), tid in records:
        args: dict[str, Any] = {}
        line = None
        if what == ITERATION:
            name = "iteration"
        elif what == OPTIMIZER:
            name = "optimizer.step"
        elif what == MODULE:
            path = module or ""
            name = f"{path or '(model)'} [{modules.types.get(path, '?')}]"
            args = {"module": path}
        elif what in (FORWARD, BACKWARD):
            if where is None:
                name = f"{what} (no project line)"
            else:
                line = where
                name = f"{where[0]}:{where[1]} {what}"
                args = {"file": where[0], "line": where[1], "code": files.source_line(where[0], where[1])}
            if module is not None:
                args["module"] = module
        else:
            continue
        spans.append(Span(name=name, cat=what, start_ns=start - origin, end_ns=end - origin, tid=tid, line=line,
                          args=args))
    memory = [MemorySample(at_ns=max(0, at - origin), bytes=value) for at, value in samples]
    return spans, memory


def _write(work: Workload, config: ProfileConfig, breakdown: Breakdown, spans: list[Span],
           memory: list[MemorySample], memory_source: str) -> None:
    assert config.trace_path is not None
    text = chrome_trace_json(
        spans, memory, process_name=f"skyline-tui: {work.entry.path.name} (batch {work.batch_size})",
        thread_names={threading.get_native_id(): "training iteration"}, memory_source=memory_source,
        other={"device": work.device.type, "batch_size": work.batch_size,
               "breakdown_profiled_iteration_ms": breakdown.profiled_iteration_ms})
    try:
        write_text(text, config.trace_path, sys.stdout)
    except OSError as exc:
        raise fail("file", f"cannot write the trace to {config.trace_path}: {exc.strerror or exc}") from None
