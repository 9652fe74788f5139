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
    """Lazy, thread-safe NVML access.  ``problem`` says once why there is no GPU data at all."""

    def __init__(self, index: int = 0, nvml_loader: Optional[Callable[[], Any]] = None):
        self._index = index
        self._load_nvml = nvml_loader or _import_pynvml
        self._lock = threading.Lock()
        self._nvml: Any = None
        self._handle: Any = None
        self._tried = False
        self._problem: Optional[str] = None
        self._problem_reported = False

    def sample(self) -> GpuSample:
        with self._lock:
            if not self._tried:
                self._tried = True
                self._init()
            if self._handle is None:
                return NOT_AVAILABLE
            nvml, handle = self._nvml, self._handle
            name = _query(lambda: nvml.nvmlDeviceGetName(handle))
            if isinstance(name, bytes):  # older pynvml versions return bytes
                name = name.decode("utf-8", "replace")
            utilization = _query(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
            memory = _query(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            temperature = _query(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            return GpuSample(
                name=name or "GPU",
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
            if self._handle is not None:
                _query(self._nvml.nvmlShutdown)
            self._handle = None

    def _init(self) -> None:
        try:
            nvml = self._load_nvml()
            nvml.nvmlInit()
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self._problem = f"no NVIDIA driver or GPU ({_describe(exc)})"
            return
        try:
            count = nvml.nvmlDeviceGetCount()
            if self._index >= count:
                self._problem = f"no GPU {self._index} (NVML sees {count})"
                _query(nvml.nvmlShutdown)
                return
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self._index)
            self._nvml = nvml
        except Exception as exc:
            self._problem = f"NVML failed: {_describe(exc)}"
            _query(nvml.nvmlShutdown)


def _import_pynvml() -> Any:
    import pynvml  # nvidia-ml-py; imported lazily so start-up never pays for it

    return pynvml


def _query(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:  # NVMLError_NotSupported and friends: that one field is N/A
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
