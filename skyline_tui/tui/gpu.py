"""GPU utilisation, memory and temperature from NVML, never raising.

The status bar polls this every second or two from a thread.  NVML is initialised lazily on the first
query; if that fails (no driver, no GPU, no pynvml) every later query answers at once with N/A values and
the reason is reported exactly once.  Individual queries that fail (a field a consumer GPU does not
support) come back as ``None`` for that field only.  Nothing outside this module touches pynvml.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class GpuSample:
    """One reading of one GPU; ``None`` fields are not available (shown as N/A)."""

    name: Optional[str] = None
    utilization_percent: Optional[int] = None
    memory_used_bytes: Optional[int] = None
    memory_total_bytes: Optional[int] = None
    temperature_c: Optional[int] = None

    @property
    def available(self) -> bool:
        return self.name is not None


NOT_AVAILABLE = GpuSample()


class GpuMonitor:
    """Lazy, thread-safe NVML access to the GPU a report ran on.  ``problem`` says once why there is no
    GPU data at all.

    The GPU is named by the UUID the profiler read from torch (``DeviceInfo.uuid``), never by an index:
    NVML counts in PCI order and ignores ``CUDA_VISIBLE_DEVICES``, so its device 0 is often not the
    profiled one.  Under MIG the UUID names a MIG instance; NVML's utilisation and temperature exist
    only for the whole GPU, so the parent GPU is read and its name says so.
    """

    def __init__(self, nvml_loader: Optional[Callable[[], Any]] = None):
        self._load_nvml = nvml_loader or _import_pynvml
        self._lock = threading.Lock()
        self._nvml: Any = None
        self._handles: dict[Optional[str], tuple[Any, bool]] = {}  # uuid -> (handle, is a MIG parent)
        self._tried = False
        self._problem: Optional[str] = None
        self._problem_reported = False

    def sample(self, uuid: Optional[str] = None) -> GpuSample:
        """Readings of the GPU with this UUID (``None``: the report does not name one; then only a
        machine with exactly one GPU has an unambiguous answer)."""
        with self._lock:
            if not self._tried:
                self._tried = True
                self._init()
            if self._nvml is None:
                return NOT_AVAILABLE
            found = self._handles.get(uuid)
            if found is None:
                found = self._find(uuid)
                if found is None:
                    return NOT_AVAILABLE
                self._handles[uuid] = found
            nvml, (handle, mig_parent) = self._nvml, found
            name = _query(lambda: nvml.nvmlDeviceGetName(handle))
            if isinstance(name, bytes):  # older pynvml versions return bytes
                name = name.decode("utf-8", "replace")
            utilization = _query(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
            memory = _query(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            temperature = _query(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            return GpuSample(
                name=(name or "GPU") + (" (whole GPU of this MIG instance)" if mig_parent else ""),
                utilization_percent=getattr(utilization, "gpu", None),
                memory_used_bytes=getattr(memory, "used", None),
                memory_total_bytes=getattr(memory, "total", None),
                temperature_c=temperature,
            )

    def take_problem(self) -> Optional[str]:
        """Why there is no GPU data, the first time it is asked; afterwards ``None`` (report it once)."""
        with self._lock:
            if self._problem is None or self._problem_reported:
                return None
            self._problem_reported = True
            return self._problem

    def close(self) -> None:
        with self._lock:
            if self._nvml is not None:
                _query(self._nvml.nvmlShutdown)
            self._nvml = None
            self._handles.clear()

    def _init(self) -> None:
        try:
            nvml = self._load_nvml()
            nvml.nvmlInit()
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self._problem = f"no NVIDIA driver or GPU ({_describe(exc)})"
            return
        self._nvml = nvml

    def _find(self, uuid: Optional[str]) -> Optional[tuple[Any, bool]]:
        """The NVML handle for ``uuid`` (and whether it is a MIG instance's parent GPU); on failure the
        problem is noted (told once) and ``None`` returned."""
        nvml = self._nvml
        if uuid is None:
            count = _query(nvml.nvmlDeviceGetCount)
            if count == 1:
                handle = _query(lambda: nvml.nvmlDeviceGetHandleByIndex(0))
                if handle is not None:
                    return handle, False
            self._problem = self._problem or (f"the report does not name its GPU's UUID and NVML sees {count} GPUs: "
                                              "which one ran it is unknown")
            return None
        for candidate, is_mig in _uuid_candidates(uuid):
            # Looked up inside _query: an old NVML may lack the function itself.
            handle = _query(lambda key: nvml.nvmlDeviceGetHandleByUUID(key), candidate)
            if handle is None:
                continue
            if is_mig:
                parent = _query(lambda mig: nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig), handle)
                return (parent, True) if parent is not None else None
            return handle, False
        self._problem = self._problem or f"NVML knows no GPU with UUID {uuid}"
        return None


def _uuid_candidates(uuid: str) -> list[tuple[str, bool]]:
    """NVML spellings of a UUID, with whether each names a MIG instance.  torch prints the bare hex
    groups; NVML wants "GPU-…" for a GPU and "MIG-…" for a MIG instance."""
    if uuid.startswith("MIG-"):
        return [(uuid, True)]
    if uuid.startswith("GPU-"):
        return [(uuid, False)]
    return [(f"GPU-{uuid}", False), (f"MIG-{uuid}", True)]


def _import_pynvml() -> Any:
    import pynvml  # nvidia-ml-py; imported lazily so start-up never pays for it

    return pynvml


def _query(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except Exception:  # NVMLError_NotSupported and friends: that one field is N/A
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
