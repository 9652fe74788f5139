"""This machine as a report names it: the CPU's model name, the ``DeviceInfo.name`` of a profile on CPU and so
the ``device`` the history store keeps.  Torch-free: the profiler names its device with it, and a front door
finds the drift the store learned on this machine before a profile starts (``history.lookup``)."""

from __future__ import annotations

import platform


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"
