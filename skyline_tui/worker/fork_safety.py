"""Keeping the worker able to fork CUDA-capable children.

A child forked from a process that has initialised CUDA cannot use CUDA ("Cannot re-initialize CUDA in
forked subprocess").  The worker imports torch but must never initialise CUDA itself:

- its environment sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so a ``torch.cuda.is_available()`` run in
  the worker (by an import, say) asks NVML instead of initialising the driver;
- before each fork it checks ``torch.cuda.is_initialized()``, and that the CUDA driver library is not
  mapped into it (a bare ``cudaGetDeviceCount``, which torch falls back to when NVML cannot answer, runs
  ``cuInit`` without setting torch's flag), and refuses with an internal error, rather than hand the user
  a child whose every CUDA call fails.

The environment lives in ``protocol.WORKER_ENVIRONMENT`` (torch-free: the client, in the UI process,
starts the worker with it); this module is the worker's side.
"""

from __future__ import annotations

from typing import Optional

import torch


def cuda_fork_problem(maps_path: str = "/proc/self/maps") -> Optional[str]:
    """Why forking a run child now would break CUDA in it, or ``None`` when it is safe."""
    if torch.cuda.is_initialized() or driver_mapped(maps_path):
        return ("internal error: the profiler's worker process initialised CUDA, so a run forked from it "
                "could not use the GPU; please report this as a skyline-tui bug")
    return None


def driver_mapped(maps_path: str = "/proc/self/maps") -> bool:
    """Whether the CUDA driver (``libcuda.so``) is loaded into this process: the first CUDA call loads it.
    ``libcudart``, mapped by every ``import torch`` of a CUDA build, does not count.  False where the
    process map cannot be read (not Linux)."""
    try:
        with open(maps_path, encoding="utf-8", errors="replace") as maps:
            return any("/libcuda.so" in line for line in maps)
    except OSError:
        return False
