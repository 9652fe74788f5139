"""Turning failures into ErrorInfo that points at the user's file and line, never at ours."""

from __future__ import annotations

import traceback
from types import TracebackType
from typing import Optional

from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.report import ErrorInfo


class ProfileError(Exception):
    """A failure with a ready-made ErrorInfo (bad entry point, OOM, ...)."""

    def __init__(self, info: ErrorInfo):
        super().__init__(info.message)
        self.info = info


def fail(kind: str, message: str, *, file: Optional[str] = None, line: Optional[int] = None,
         function: Optional[str] = None, traceback_text: str = "") -> ProfileError:
    return ProfileError(ErrorInfo(kind=kind, message=message, file=file, line=line,
                                  function=function, traceback=traceback_text))


# Out-of-memory reported by libraries that allocate their own workspace: cuBLAS (at handle creation, e.g.
# the first matmul after memory filled up) and cuDNN.  torch raises these as a plain RuntimeError (or
# torch.AcceleratorError) whose text names the status, not as torch.OutOfMemoryError.
_OOM_STATUSES = ("CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE")


def is_oom(exc: BaseException) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - the worker always has torch
        return False
    if isinstance(exc, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc)
    return ("out of memory" in text.lower() or "DefaultCPUAllocator: can't allocate" in text
            or any(status in text for status in _OOM_STATUSES))


def user_traceback(tb: Optional[TracebackType], files: ProjectFiles) -> tuple[str, Optional[tuple[str, int, str]]]:
    """Format only the project's frames; return the text and the innermost (file, line, function)."""
    lines: list[str] = []
    innermost: Optional[tuple[str, int, str]] = None
    for frame_summary in traceback.extract_tb(tb):
        rel = files.relpath(frame_summary.filename)
        if rel is None:
            continue
        innermost = (rel, frame_summary.lineno or 0, frame_summary.name)
        lines.append(f'  File "{rel}", line {frame_summary.lineno}, in {frame_summary.name}\n')
        if frame_summary.line:
            lines.append(f"    {frame_summary.line.strip()}\n")
    return "".join(lines), innermost


def from_exception(exc: BaseException, files: ProjectFiles, *, kind: Optional[str] = None,
                   function: Optional[str] = None) -> ErrorInfo:
    """An ErrorInfo for an exception raised while running user code."""
    if isinstance(exc, ProfileError):
        return exc.info
    text, innermost = user_traceback(exc.__traceback__, files)
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    if kind is None:
        if isinstance(exc, SystemExit):
            kind = "exit"
            summary = f"user code called sys.exit({exc.code!r})"
        elif isinstance(exc, KeyboardInterrupt):
            kind = "cancelled"
        elif is_oom(exc):
            kind = "oom"
        else:
            kind = "user_code"
    tb_text = ("Traceback (project frames only):\n" + text + summary) if text else summary
    file, line, func = innermost if innermost else (None, None, None)
    return ErrorInfo(kind=kind, message=summary.splitlines()[-1] if summary else type(exc).__name__,
                     file=file, line=line, traceback=tb_text, function=func or function)
