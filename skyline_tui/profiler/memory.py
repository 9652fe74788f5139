"""Peak memory of a training iteration, and what it is made of.

Peak (``measure_peak``):

- CUDA: the caching allocator's own high-water mark (``torch.cuda.max_memory_allocated``) over one
  iteration, after one un-measured iteration at the same inputs (first-call workspaces, lazy optimizer
  state).  At another batch size the profiled batch's inputs, still alive, are taken out, so CPU and
  CUDA peaks count the same things (the CPU peak counts only the measured batch's inputs).  What the
  allocator reserved over that iteration (``reserved_peak``, from an emptied cache) is read right after.
- CPU: there is no allocator statistic, so the allocator's own events are integrated.  With
  ``torch.profiler(profile_memory=True)`` the CPU allocator reports every allocation and free made while
  the profiler runs.  Two iterations are profiled: the first one only makes the second one's frees visible
  (a block allocated before profiling, e.g. last iteration's gradients freed by ``zero_grad``, is reported
  by nobody), the second is measured: peak = bytes resident when it starts (weights, buffers, gradients,
  optimizer state, inputs; each storage once) + the highest running sum of its allocations minus frees.
  This sees kernels' internal workspaces too, which tensor-level tracking would miss.

The named parts (``measure_memory``) are exact byte counts of storages, each counted once.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, Iterable, Iterator, Optional

import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.attribution import ModuleTracker
from skyline_tui.profiler.compiled import named_modules
from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.profiler.optimizer_watch import OptimizerWatch, optimizer_state_tensors
from skyline_tui.profiler.workload import Workload, device_info
from skyline_tui.report import MemoryBreakdown, MemoryEntry

CUDA_PEAK_SOURCE = "torch.cuda.max_memory_allocated"
CPU_PEAK_SOURCE = ("torch.profiler CPU allocator events (profile_memory=True): resident weights, gradients, "
                   "optimizer state and inputs + the highest running total of one iteration's allocations")
_MEASURED_MARK = "skyline::measured_iteration"
PEAK_ITERATIONS = 2  # what measure_peak runs: one to settle, one measured (CUDA and CPU alike)

StorageKey = tuple[str, int, int]


# ---------------------------------------------------------------------------------------------------
# Storage accounting: views share storage, so bytes are counted per storage, never per tensor.


def storage_key(tensor: torch.Tensor) -> Optional[StorageKey]:
    try:
        storage = tensor.untyped_storage()
    except (RuntimeError, NotImplementedError, TypeError):  # sparse, nested, ... : no plain storage
        return None
    return storage.device.type, storage.device.index or 0, storage.data_ptr()


def storage_nbytes(tensor: torch.Tensor) -> int:
    try:
        return int(tensor.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError, TypeError):
        return tensor.numel() * tensor.element_size()


def unique_storage_bytes(tensors: Iterable[torch.Tensor], seen: Optional[set[StorageKey]] = None) -> int:
    """Bytes of the distinct storages behind ``tensors``; storages already in ``seen`` are skipped."""
    seen = set() if seen is None else seen
    total = 0
    for tensor in tensors:
        key = storage_key(tensor)
        if key is None:
            total += storage_nbytes(tensor)
            continue
        if key in seen or key[2] == 0:
            continue
        seen.add(key)
        total += storage_nbytes(tensor)
    return total


def tensor_leaves(value: Any) -> Iterator[torch.Tensor]:
    """Tensors inside nested tuples/lists/dicts (the shapes inputs come in)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from tensor_leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensor_leaves(item)


def resident_tensors(model: torch.nn.Module, optimizers: list[torch.optim.Optimizer],
                     inputs: tuple[Any, ...]) -> Iterator[torch.Tensor]:
    """Tensors alive between iterations: weights, buffers, gradients, optimizer state and the inputs."""
    for param in model.parameters():
        yield param
        if param.grad is not None:
            yield param.grad
    yield from model.buffers()
    yield from optimizer_state_tensors(optimizers)
    yield from tensor_leaves(inputs)


# ---------------------------------------------------------------------------------------------------
# Peak


def measure_peak(work: Workload, inputs: tuple[Any, ...],
                 first: Optional[Callable[[], Any]] = None) -> tuple[int, str]:
    """Peak bytes of one training iteration of ``work`` at ``inputs``, and how it was measured.

    User exceptions (an out-of-memory error above all) propagate unchanged: callers narrow the batch size
    on OOM.  Runs ``PEAK_ITERATIONS`` iterations; the first, un-measured one is ``first`` when given (an
    iteration at ``inputs`` the caller wants run anyway, with instruments that allocate nothing).
    """
    first = first or (lambda: work.iteration(*inputs))
    if work.device.type == "cuda":
        return _cuda_peak(work, inputs, first), CUDA_PEAK_SOURCE
    return _cpu_peak(work, inputs, first), CPU_PEAK_SOURCE


def _cuda_peak(work: Workload, inputs: tuple[Any, ...], first: Callable[[], Any]) -> int:
    device = work.device
    with torch.cuda.device(device):
        first()
        torch.cuda.synchronize(device)
        # Cached segments another batch size left (or this one's first iteration) would count in the reserved
        # peak (reserved_peak), yet the allocator frees them before it runs out: measure from what is in use.
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        work.iteration(*inputs)
        torch.cuda.synchronize(device)
        peak = int(torch.cuda.max_memory_allocated(device))
    # The allocator counts everything alive, the profiled batch's inputs too while another batch is
    # measured; the CPU peak counts only ``inputs`` as resident.  Measured alike: without them.
    return max(0, peak - other_batch_input_bytes(work, inputs))


def other_batch_input_bytes(work: Workload, inputs: tuple[Any, ...]) -> int:
    """Bytes of the profiled batch's input storages on ``work.device`` that ``inputs`` (another batch)
    does not share and the model does not own: resident during a measurement at another batch size, but
    not part of that batch's own training iteration."""
    if inputs is work.inputs:
        return 0
    shared: set[StorageKey] = set()
    unique_storage_bytes(list(tensor_leaves(inputs)) + list(work.model.parameters()) + list(work.model.buffers()),
                         shared)
    on_device = [t for t in tensor_leaves(work.inputs) if t.device == work.device]
    return unique_storage_bytes(on_device, shared)


_allocator_warning_consumed = False


def _consume_allocator_warning() -> None:
    """c10 warns once per process, on stderr, when a block allocated before memory profiling is freed
    during it -- which every measured iteration does.  Trigger that one warning here, silenced, so it
    never lands in the user's log."""
    global _allocator_warning_consumed
    if _allocator_warning_consumed:
        return
    from torch.profiler import ProfilerActivity, profile

    block = torch.empty(16)
    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True):
        del block
    _allocator_warning_consumed = True


def _cpu_peak(work: Workload, inputs: tuple[Any, ...], first: Callable[[], Any]) -> int:
    from torch.profiler import ProfilerActivity, profile, record_function

    _consume_allocator_warning()
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with OptimizerWatch() as watch:
        with _native_stderr_silenced():
            prof.start()
        try:
            first()  # makes the measured iteration's frees visible (see the module doc)
            resident = unique_storage_bytes(resident_tensors(work.model, watch.optimizers, inputs))
            with record_function(_MEASURED_MARK):
                work.iteration(*inputs)
        finally:
            with _native_stderr_silenced():
                prof.stop()
    return resident + _highest_running_total_after_mark(prof)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Kineto prints "USDT: ... profiler_start/stop" lines on the process's stderr from C++, which no
    setting turns off; they would land in the user's log.  Only the start/stop calls are silenced, never
    the user's iteration."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _highest_running_total_after_mark(prof: Any) -> int:
    """Highest (allocations - frees) reached after the measured iteration's mark, relative to the mark."""
    from torch.profiler import DeviceType  # what torch.autograd holds too, but exports from here

    events = prof.profiler.kineto_results.events()
    mark_ns = None
    for event in events:
        if event.name() == _MEASURED_MARK:
            mark_ns = event.start_ns()
            break
    if mark_ns is None:  # pragma: no cover - the mark is always recorded
        raise RuntimeError("the profiler did not record the measured iteration")
    # Stable sort by time: an allocation and a free in the same nanosecond keep their recorded order.
    deltas = sorted(((event.start_ns(), event.nbytes()) for event in events
                     if event.name() == "[memory]" and event.start_ns() >= mark_ns
                     and event.device_type() == DeviceType.CPU), key=lambda item: item[0])
    running = highest = 0
    for _, nbytes in deltas:
        running += nbytes
        if running > highest:
            highest = running
    return highest


# ---------------------------------------------------------------------------------------------------
# Named parts


class SavedActivations:
    """``saved_tensors_hooks`` pair that sizes what autograd keeps for backward, by module and line.

    Each storage is counted once (a ReLU's output saved by the ReLU and by the next Linear is one
    buffer); parameter and buffer storages are excluded (``weight.t()`` saved by ``addmm`` is a weight,
    not an activation).  The pack hook returns the tensor itself, so memory behaves as without it.
    """

    def __init__(self, files: ProjectFiles, modules: ModuleTracker, exclude: set[StorageKey]):
        self._innermost = files.innermost
        self._modules = modules
        self._seen = set(exclude)
        self.total = 0
        self.by_site: dict[tuple[Optional[str], Optional[tuple[str, int]]], int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = storage_key(tensor)
        if key is None or key in self._seen or key[2] == 0:
            return tensor
        self._seen.add(key)
        nbytes = storage_nbytes(tensor)
        self.total += nbytes
        site = (self._modules.current, self._innermost(sys._getframe(1)))
        self.by_site[site] = self.by_site.get(site, 0) + nbytes
        return tensor

    @staticmethod
    def unpack(packed: torch.Tensor) -> torch.Tensor:
        return packed


def weight_entries(model: torch.nn.Module) -> tuple[int, list[MemoryEntry]]:
    """Weights = parameters + buffers (BatchNorm running statistics are state the model carries, not a
    gradient or an activation, so they are counted here rather than left in "other")."""
    seen: set[StorageKey] = set()
    entries = []
    total = 0
    for path, module in named_modules(model):
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        nbytes = unique_storage_bytes(own, seen)
        if nbytes:
            total += nbytes
            entries.append(MemoryEntry(kind="weights", bytes=nbytes, module=path))
    return total, entries


def measure_memory(work: Workload, config: ProfileConfig) -> MemoryBreakdown:
    model = work.model
    weights_bytes, entries = weight_entries(model)
    model_storages: set[StorageKey] = set()
    unique_storage_bytes(list(model.parameters()) + list(model.buffers()), model_storages)

    gradients: list[int] = []

    def gradients_at_step(optimizer: Any) -> None:
        # Gradients are surely complete when the optimizer steps (an iteration may free them afterwards).
        if not gradients:
            gradients.append(unique_storage_bytes(p.grad for p in model.parameters() if p.grad is not None))

    tracker = ModuleTracker(model, work.entry.files)
    saved = SavedActivations(work.entry.files, tracker, model_storages)
    watch = OptimizerWatch(on_step_start=gradients_at_step)

    def one_iteration() -> None:
        with watch, tracker, torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
            work.iteration(*work.inputs)

    # The hooked iteration is also the peak's first, un-measured one: the hooks allocate nothing, and the
    # phase runs one iteration fewer than with it apart (2 instead of 3).
    peak, source = work.run_user(lambda: measure_peak(work, work.inputs, first=one_iteration), "iteration")
    if not gradients:  # no optimizer stepped: gradients left after the iteration
        gradients.append(unique_storage_bytes(p.grad for p in model.parameters() if p.grad is not None))
    state_bytes = unique_storage_bytes(optimizer_state_tensors(watch.optimizers), set(model_storages))
    peak_reserved = reserved_peak(work, work.inputs)
    capacity, capacity_source = memory_capacity(work.device)
    entries = [_at_call_site(entry, tracker.call_sites) for entry in entries]
    for (module, where), nbytes in saved.by_site.items():
        entries.append(MemoryEntry(kind="activations", bytes=nbytes, module=module,
                                   file=where[0] if where else None, line=where[1] if where else None))
    entries.sort(key=lambda entry: (-entry.bytes, entry.kind, entry.module or "", entry.file or "",
                                    entry.line or 0))
    named = weights_bytes + gradients[0] + state_bytes + saved.total
    return MemoryBreakdown(peak_bytes=peak, peak_source=source, capacity_bytes=capacity,
                           capacity_source=capacity_source, reserved_peak_bytes=peak_reserved,
                           weights_bytes=weights_bytes, gradients_bytes=gradients[0],
                           optimizer_state_bytes=state_bytes, activations_bytes=saved.total,
                           other_bytes=max(0, peak - named), overlap_bytes=max(0, named - peak),
                           entries=tuple(entries))


def _at_call_site(entry: MemoryEntry, call_sites: dict[str, tuple[str, int]]) -> MemoryEntry:
    """Point a module's weights at the project line that calls the module (where a user would look)."""
    site = call_sites.get(entry.module or "")
    if site is None:
        return entry
    return MemoryEntry(kind=entry.kind, bytes=entry.bytes, module=entry.module, file=site[0], line=site[1])


CUDA_CAPACITY_SOURCE = ("what this process can get: free device memory (torch.cuda.mem_get_info) + what torch's "
                        "caching allocator already holds (torch.cuda.memory_reserved)")
CPU_CAPACITY_SOURCE = "system RAM"


def memory_capacity(device: torch.device) -> tuple[Optional[int], str]:
    """Bytes a training iteration of this process may use, and what that number is.

    On CUDA not the device's total: the CUDA context, other processes and anything allocated outside
    torch are not ours to use.  Free memory plus torch's own reserve is what this process can really get
    (the reserve is reusable by the next batch, freed or not).
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free) + int(torch.cuda.memory_reserved(device)), CUDA_CAPACITY_SOURCE
    return device_info(device).memory_capacity_bytes, CPU_CAPACITY_SOURCE


def reserved_peak(work: Workload, inputs: tuple[Any, ...]) -> Optional[int]:
    """Right after ``measure_peak(work, inputs)``: the caching allocator's reserved high-water mark over the
    iteration it measured (the allocated peak plus what rounding, fragmentation and cached blocks cost),
    measured alike (without the profiled batch's inputs at another batch size); ``None`` off CUDA."""
    if work.device.type != "cuda":
        return None
    reserved = int(torch.cuda.max_memory_reserved(work.device))  # measure_peak reset it before that iteration
    return max(0, reserved - other_batch_input_bytes(work, inputs))
