"""What the run's hooks read inside the script's process: the loss (without waiting for the device), the
samples of a batch (the leading dimension of the first tensor the outermost module receives) and memory (the
process's resident set, CUDA's allocator).  The hooks that call them are :mod:`skyline_tui.run.hooks`'s.
"""

from __future__ import annotations

import os
import resource
import weakref
from typing import Any, Optional

import torch

MEMORY_EVERY_S = 0.25
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class PendingLoss:
    """A CUDA loss on its way to the host: read when the copy's event has passed."""

    __slots__ = ("host", "event")

    def __init__(self, loss: torch.Tensor):
        self.host = torch.empty((), dtype=loss.dtype, pin_memory=True)
        self.host.copy_(loss.detach().reshape(()), non_blocking=True)
        self.event = torch.cuda.Event()
        self.event.record()

    def ready(self) -> bool:
        return bool(self.event.query())

    def value(self) -> float:
        self.event.synchronize()
        return float(self.host)


def read_loss(tensor: Any) -> Any:
    """The loss as a float (CPU), a pending read (CUDA), or None (not a scalar floating-point tensor)."""
    if not isinstance(tensor, torch.Tensor) or tensor.numel() != 1 or not tensor.is_floating_point():
        return None
    if tensor.is_cuda:
        return PendingLoss(tensor)
    if tensor.is_meta:
        return None
    return tensor.item()  # on the CPU no device to wait for


class ModelCalls:
    """Which outermost module calls are the model's: a module with parameters (trained or frozen), or one
    whose input carries gradient (a loss module).  Not a transform on the data: torchvision's ``Normalize`` is a
    module, called once per sample where the DataLoader loads in the script's own process.  Whether a module
    has parameters is remembered (weakly), not walked on every call."""

    def __init__(self) -> None:
        self._has_parameters: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

    def __call__(self, module: Any, args: Any, kwargs: Optional[dict[str, Any]]) -> bool:
        has = self._has_parameters.get(module)
        if has is None:
            has = self._has_parameters[module] = next(module.parameters(), None) is not None
        if has:
            return True
        return any(isinstance(value, torch.Tensor) and value.requires_grad
                   for value in (*args, *(kwargs.values() if kwargs else ())))


def first_batch_tensor(args: Any, kwargs: Optional[dict[str, Any]]) -> Optional[tuple[str, torch.Tensor]]:
    """The first tensor with a leading dimension among the arguments, and where it was (``args[0]``)."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 1:
        return "args[0]", args[0]  # the usual case, once a step: no search
    def search(value: Any, where: str, depth: int) -> Optional[tuple[str, torch.Tensor]]:
        if isinstance(value, torch.Tensor):
            return (where, value) if value.dim() >= 1 else None
        if depth > 2:
            return None
        if isinstance(value, (list, tuple)):
            items: Any = enumerate(value)
        elif isinstance(value, dict):
            items = value.items()
        else:
            return None
        for key, item in items:
            found = search(item, f"{where}[{key!r}]" if isinstance(key, str) else f"{where}[{key}]", depth + 1)
            if found is not None:
                return found
        return None

    for i, arg in enumerate(args):
        found = search(arg, f"args[{i}]", 1)
        if found is not None:
            return found
    for key, arg in (kwargs or {}).items():
        found = search(arg, key, 1)
        if found is not None:
            return found
    return None


class MemoryReader:
    def __init__(self) -> None:
        try:
            self._statm: Optional[int] = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._statm = None
        self._next = 0.0
        self._peaks = [0, 0]  # CUDA: peak allocated, peak reserved, as sampled

    def note_peaks(self, allocated: int, reserved: int) -> None:
        self._peaks = [max(self._peaks[0], allocated), max(self._peaks[1], reserved)]

    def peak_memory(self) -> tuple[Optional[int], Optional[int], Optional[int]]:
        """Peak RSS, and CUDA's peak allocated and reserved (the allocator's, or what was sampled if higher)."""
        rss = MemoryReader.peak_rss()
        if torch.cuda.is_initialized():
            try:
                return rss, max(self._peaks[0], torch.cuda.max_memory_allocated()), \
                    max(self._peaks[1], torch.cuda.max_memory_reserved())
            except Exception:  # noqa: BLE001 - a device in an error state: its peaks are not known
                pass
        return rss, None, None

    def rss(self) -> Optional[int]:
        if self._statm is None:
            return None
        try:
            return int(os.pread(self._statm, 128, 0).split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return None

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + MEMORY_EVERY_S
        return True

    def cuda(self) -> tuple[Optional[int], Optional[int], Optional[int]]:
        if not torch.cuda.is_initialized():
            return None, None, None
        return torch.cuda.memory_allocated(), torch.cuda.memory_reserved(), torch.cuda.max_memory_allocated()

    @staticmethod
    def peak_rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes
