"""Peak memory of a training iteration, and what it is made of.

Peak (``measure_peak``):

- CUDA: the caching allocator's own high-water mark (``torch.cuda.max_memory_allocated``) over one
  iteration, after one un-measured iteration at the same inputs (first-call workspaces, lazy optimizer
  state).
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

from typing import Any, Iterable, Iterator, Optional

import torch

from skyline_tui.profiler.optimizer_watch import OptimizerWatch, optimizer_state_tensors

CUDA_PEAK_SOURCE = "torch.cuda.max_memory_allocated"
CPU_PEAK_SOURCE = ("torch.profiler CPU allocator events (profile_memory=True): resident weights, gradients, "
                   "optimizer state and inputs + the highest running total of one iteration's allocations")
_MEASURED_MARK = "skyline::measured_iteration"

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


def measure_peak(work: Any, inputs: tuple[Any, ...]) -> tuple[int, str]:
    """Peak bytes of one training iteration of ``work`` at ``inputs``, and how it was measured.

    User exceptions (an out-of-memory error above all) propagate unchanged: callers narrow the batch size
    on OOM.  Runs two iterations.
    """
    if work.device.type == "cuda":
        return _cuda_peak(work, inputs), CUDA_PEAK_SOURCE
    return _cpu_peak(work, inputs), CPU_PEAK_SOURCE


def _cuda_peak(work: Any, inputs: tuple[Any, ...]) -> int:
    device = work.device
    work.iteration(*inputs)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    work.iteration(*inputs)
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


def _cpu_peak(work: Any, inputs: tuple[Any, ...]) -> int:
    from torch.profiler import ProfilerActivity, profile, record_function

    with OptimizerWatch() as watch:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            work.iteration(*inputs)  # makes the measured iteration's frees visible (see the module doc)
            resident = unique_storage_bytes(resident_tensors(work.model, watch.optimizers, inputs))
            with record_function(_MEASURED_MARK):
                work.iteration(*inputs)
    return resident + _highest_running_total_after_mark(prof)


def _highest_running_total_after_mark(prof: Any) -> int:
    """Highest (allocations - frees) reached after the measured iteration's mark, relative to the mark."""
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
                     and event.device_type() == torch.autograd.DeviceType.CPU), key=lambda item: item[0])
    running = highest = 0
    for _, nbytes in deltas:
        running += nbytes
        if running > highest:
            highest = running
    return highest
