"""skyline-tui: a terminal profiler for the training performance of PyTorch models.

``skyline_tui.profile("entry.py")`` profiles an entry point in a worker subprocess and returns the
:class:`Report`; ``skyline_tui.track.log(loss=...)`` records a training script's metrics.  Importing
this package imports neither torch nor textual: ``profile`` loads its machinery on first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from skyline_tui.version import TOOL_NAME, __version__  # noqa: F401 - TOOL_NAME: kept for importers

__all__ = ["profile", "track", "Report", "__version__"]

if TYPE_CHECKING:
    from skyline_tui.report import Report


def profile(entry: Any, batch_size: Optional[int] = None, **options: Any) -> "Report":
    """Profile ``entry`` once, in a worker subprocess; see :func:`skyline_tui.api.profile` for the options."""
    from skyline_tui.api import profile as run_profile

    return run_profile(entry, batch_size, **options)


def __getattr__(name: str) -> Any:
    if name == "track":  # skyline_tui.track.log(...) without importing the subpackage first
        import importlib

        return importlib.import_module("skyline_tui.track")
    if name == "Report":
        from skyline_tui.report import Report

        return Report
    raise AttributeError(f"module 'skyline_tui' has no attribute {name!r}")
