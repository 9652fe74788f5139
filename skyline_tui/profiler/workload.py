"""The workload: an entry point loaded into a model, its iteration and inputs, on the device it chose.

Every phase measures a :class:`Workload`; nothing here measures anything.
"""

from __future__ import annotations

import os
import platform
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from skyline_tui.profiler import entry as entry_mod
from skyline_tui.profiler.entry import EntryPoint
from skyline_tui.profiler.errors import ProfileError, from_exception
from skyline_tui.report import DeviceInfo


@dataclass
class Workload:
    """Everything a measurement needs: the loaded model, its iteration, and inputs at one batch size."""

    entry: EntryPoint
    model: torch.nn.Module
    iteration: Callable[..., Any]
    batch_size: int
    inputs: tuple[Any, ...]
    device: torch.device
    _inputs_by_batch: dict[int, tuple[Any, ...]] = field(default_factory=dict)

    def run(self) -> Any:
        return self.iteration(*self.inputs)

    def make_inputs(self, batch_size: int) -> tuple[Any, ...]:
        """Inputs at another batch size (through the user's input provider)."""
        if batch_size == self.batch_size:
            return self.inputs
        return entry_mod.make_inputs(self.entry, batch_size)

    def run_user(self, func: Callable[[], Any], what: str) -> Any:
        """Run user code, turning its exceptions into errors that point at the user's frame."""
        try:
            return func()
        except ProfileError:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise ProfileError(from_exception(exc, self.entry.files, function=what)) from None


def detect_device(model: torch.nn.Module, inputs: tuple[Any, ...]) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    for item in inputs:
        if isinstance(item, torch.Tensor):
            return item.device
    return torch.device("cpu")


def device_info(device: torch.device) -> DeviceInfo:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return DeviceInfo(type="cuda", name=props.name, memory_capacity_bytes=int(props.total_memory),
                          uuid=_uuid_of(props))
    return DeviceInfo(type=device.type, name=_cpu_name(), memory_capacity_bytes=_system_memory())


def _uuid_of(props: Any) -> Optional[str]:
    """The device's UUID in hex groups, without NVML's "GPU-"/"MIG-" prefix (a status bar tries both;
    under MIG it names the instance).  From the raw 16 bytes where torch exposes them, so it does not
    depend on how torch prints the object; ``None`` where this torch build has no UUID."""
    raw = getattr(props, "uuid", None)
    if raw is None:
        return None
    try:
        data = bytes(raw.bytes)
    except (AttributeError, TypeError, ValueError):
        data = b""
    if len(data) == 16:
        return str(uuid.UUID(bytes=data))
    text = str(raw).strip().removeprefix("GPU-")
    return text or None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def _system_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def load_workload(ep: EntryPoint, batch_size: int) -> Workload:
    model = entry_mod.check_model(ep, entry_mod.call_provider(ep, ep.model_provider))
    iteration = entry_mod.check_iteration(ep, entry_mod.call_provider(ep, ep.iteration_provider, model))
    inputs = entry_mod.make_inputs(ep, batch_size)
    entry_mod.check_arity(ep, iteration, inputs)
    return Workload(entry=ep, model=model, iteration=iteration, batch_size=batch_size, inputs=inputs,
                    device=detect_device(model, inputs))
