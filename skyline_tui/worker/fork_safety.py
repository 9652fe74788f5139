"""Keeping the worker able to fork CUDA-capable children.

A child forked from a process that has initialised CUDA cannot use CUDA ("Cannot re-initialize CUDA in
forked subprocess").  The worker imports torch but must never initialise CUDA itself:

- its environment sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so a ``torch.cuda.is_available()`` run in
  the worker (by an import, say) asks NVML instead of initialising the driver;
- before each fork it checks ``torch.cuda.is_initialized()`` and refuses with an internal error, rather
  than hand the user a child whose every CUDA call fails.

The environment lives in ``protocol.WORKER_ENVIRONMENT`` (torch-free: the client, in the UI process,
starts the worker with it); this module is the worker's side.
"""

from __future__ import annotations

from typing import Optional

import torch


def cuda_fork_problem() -> Optional[str]:
    """Why forking a run child now would break CUDA in it, or ``None`` when it is safe."""
    if torch.cuda.is_initialized():
        return ("internal error: the profiler's worker process initialised CUDA, so a run forked from it "
                "could not use the GPU; please report this as a skyline-tui bug")
    return None
