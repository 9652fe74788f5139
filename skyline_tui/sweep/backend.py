"""The contract every place that runs trials follows, and how one is found by name.

Each backend is a sibling module imported only when chosen (``--ray`` must not import ray otherwise), in
the shape of harlequin's adapters: a small base class here, the implementations beside it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, Callable, Optional

from skyline_tui.sweep.results import Trial, TrialResult

# name -> (module, class): listed without importing any of them.
BACKENDS: dict[str, tuple[str, str]] = {
    "local": ("skyline_tui.sweep.local", "LocalBackend"),
    "ray": ("skyline_tui.sweep.ray_backend", "RayBackend"),
}

OnResult = Callable[[TrialResult], None]
OnStart = Callable[[Trial], None]


class BackendError(RuntimeError):
    """The backend cannot run at all (ray missing, a cluster unreachable): one line for the user."""


class SweepBackend(ABC):
    """Runs trials and calls ``on_result`` on the calling thread as each one finishes, in any order.

    ``run`` returns when every trial has a result.  On KeyboardInterrupt it stops every trial still
    running, leaves no process it started, and re-raises; the results already delivered stand.
    """

    name: str = ""

    @abstractmethod
    def run(self, entry: str, root: Optional[str], trials: list[Trial], on_result: OnResult,
            on_start: Optional[OnStart] = None) -> None: ...

    def check(self) -> None:  # noqa: B027 - an optional hook: most backends can always run
        """Raise BackendError if this backend cannot run here (called before any trial)."""

    def describe(self) -> str:
        """Where the trials run, in a few words, for the live table's title."""
        return self.name


def backend_named(name: str, **options: Any) -> SweepBackend:
    try:
        module_name, class_name = BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown sweep backend {name!r} (known: {', '.join(BACKENDS)})") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    backend: SweepBackend = cls(**options)
    return backend
