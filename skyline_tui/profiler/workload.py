"""The workload: an entry point loaded into a model, its iteration and inputs, on the device it chose.

Every phase measures a :class:`Workload`; nothing here measures anything.
"""

from __future__ import annotations

import functools
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar

import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.machine import cpu_name
from skyline_tui.profiler import entry as entry_mod
from skyline_tui.profiler.entry import EntryPoint
from skyline_tui.profiler.errors import ProfileError, from_exception
from skyline_tui.report import DeviceInfo

T = TypeVar("T")


@dataclass
class Workload:
    """Everything a measurement needs: the loaded model, its iteration, and inputs at one batch size."""

    entry: EntryPoint
    model: torch.nn.Module
    iteration: Callable[..., Any]
    batch_size: int
    inputs: tuple[Any, ...]
    device: torch.device
    knobs: dict[str, Any] = field(default_factory=dict)  # provider keyword arguments (ProfileConfig.knobs)
    channels_last: bool = False
    _inputs_by_batch: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    # Where the predictions measure each new batch size on CPU: a predictions.processes.BatchProcesses (run.py
    # starts it before the load), or None: in this process.
    batch_processes: Any = None

    def run(self) -> Any:
        return self.iteration(*self.inputs)

    def make_inputs(self, batch_size: int) -> tuple[Any, ...]:
        """Inputs at another batch size (through the user's input provider)."""
        if batch_size == self.batch_size:
            return self.inputs
        return _formatted(entry_mod.make_inputs(self.entry, batch_size, self.knobs), self.channels_last)

    def run_user(self, func: Callable[[], T], what: str) -> T:
        """Run user code, turning its exceptions into errors that point at the user's frame."""
        try:
            return func()
        except ProfileError:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise ProfileError(from_exception(exc, self.entry.files, function=what)) from None


def detect_device(model: torch.nn.Module, inputs: tuple[Any, ...]) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    for item in inputs:
        if isinstance(item, torch.Tensor):
            return item.device
    return torch.device("cpu")


def device_info(device: torch.device) -> DeviceInfo:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return DeviceInfo(type="cuda", name=props.name, memory_capacity_bytes=int(props.total_memory),
                          uuid=_uuid_of(props))
    return DeviceInfo(type=device.type, name=cpu_name(), memory_capacity_bytes=_system_memory())


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


def _system_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def load_workload(ep: EntryPoint, batch_size: int, config: Optional[ProfileConfig] = None) -> Workload:
    """Build the model, its iteration and inputs, with the config's knobs applied (none by default)."""
    config = config or ProfileConfig()
    knobs = dict(config.knobs or {})
    model = entry_mod.check_model(ep, entry_mod.call_provider(
        ep, ep.model_provider, **entry_mod.knobs_for(ep.model_provider, knobs)))
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.compile:
        # Compiling happens on the first call; run.py times that call apart from the throughput.
        model = torch.compile(model)
    iteration = entry_mod.check_iteration(ep, entry_mod.call_provider(
        ep, ep.iteration_provider, model, **entry_mod.knobs_for(ep.iteration_provider, knobs)))
    inputs = _formatted(entry_mod.make_inputs(ep, batch_size, knobs), config.channels_last)
    entry_mod.check_arity(ep, iteration, inputs)
    device = detect_device(model, inputs)
    if config.precision != "fp32":
        iteration = _autocast(iteration, device, AUTOCAST_DTYPES[config.precision])
    return Workload(entry=ep, model=model, iteration=iteration, batch_size=batch_size, inputs=inputs,
                    device=device, knobs=knobs, channels_last=config.channels_last)


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(iteration: Callable[..., Any], device: torch.device, dtype: torch.dtype) -> Callable[..., Any]:
    """The user's iteration under torch.autocast on the model's device type.  A wrapper rather than a
    context around the measuring code, so every phase (timing, breakdown, memory, predictions) sees it."""
    @functools.wraps(iteration)
    def iteration_under_autocast(*inputs: Any) -> Any:
        with torch.autocast(device_type=device.type, dtype=dtype):
            return iteration(*inputs)

    return iteration_under_autocast


def _formatted(inputs: tuple[Any, ...], channels_last: bool) -> tuple[Any, ...]:
    if not channels_last:
        return inputs
    return tuple(item.contiguous(memory_format=torch.channels_last)
                 if isinstance(item, torch.Tensor) and item.dim() == 4 else item for item in inputs)
