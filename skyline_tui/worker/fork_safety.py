"""Keeping the worker able to fork CUDA-capable children.

A child forked from a process that has initialised CUDA cannot use CUDA ("Cannot re-initialize CUDA in
forked subprocess").  The worker imports torch but must never initialise CUDA itself:

- its environment sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so a ``torch.cuda.is_available()`` run in
  the worker (by an import, say) asks NVML instead of initialising the driver;
- before each fork it checks ``torch.cuda.is_initialized()``, and that the driver has mapped no GPU device
  file into it (a bare ``cudaGetDeviceCount``, which torch falls back to when NVML cannot answer, runs
  ``cuInit`` without setting torch's flag), and refuses with an internal error, rather than hand the user
  a child whose every CUDA call fails.

What marks ``cuInit``, as seen on an H200 with torch 2.11+cu130 and driver 580: not ``libcuda.so`` in the
process map, which that torch maps at ``import torch`` (a child forked then ran CUDA fine), nor open
``/dev/nvidia*`` descriptors, which the NVML check opens too (a child forked then ran CUDA fine); but
mappings of the device files themselves (``/dev/nvidiactl``, ``/dev/nvidia0``), there after ``cuInit``
and after ``torch.cuda.init()``, and a child forked after either failed its first CUDA call.

The environment lives in ``protocol.WORKER_ENVIRONMENT`` (torch-free: the client, in the UI process,
starts the worker with it); this module is the worker's side.
"""

from __future__ import annotations

from typing import Optional

import torch


def cuda_fork_problem(maps_path: str = "/proc/self/maps") -> Optional[str]:
    """Why forking a run child now would break CUDA in it, or ``None`` when it is safe."""
    if torch.cuda.is_initialized() or driver_initialised(maps_path):
        return ("internal error: the profiler's worker process initialised CUDA, so a run forked from it "
                "could not use the GPU; please report this as a skyline-tui bug")
    return None


def driver_initialised(maps_path: str = "/proc/self/maps") -> bool:
    """Whether the CUDA driver has been initialised in this process (``cuInit``): it maps GPU device files
    (``/dev/nvidiactl``, ``/dev/nvidia0``...) into the address space.  Merely loading ``libcuda.so``, as
    some torch builds do at import, maps none.  False where the process map cannot be read (not Linux)."""
    try:
        with open(maps_path, encoding="utf-8", errors="replace") as maps:
            # address perms offset dev inode [path]: the path may be absent (anonymous memory)
            return any(fields[5].startswith("/dev/nvidia") for fields in (line.split(maxsplit=5) for line in maps)
                       if len(fields) == 6)
    except OSError:
        return False
