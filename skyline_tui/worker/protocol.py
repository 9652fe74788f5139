"""The worker's private channel: typed messages as JSON lines over pipes that only we use.

The user's code owns stdout and stderr; those are captured separately and arrive as ``RunLog`` events.
Requests go parent -> worker, events go worker -> parent.  Each message is one JSON object on one line
with a ``type`` key.  This module imports neither torch nor textual: both sides use it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Optional, Union

from skyline_tui.config import ProfileConfig
from skyline_tui.report import Report

# ---- requests (parent -> worker) -------------------------------------------------------------------


# The worker's environment on top of the user's.  PYTORCH_NVML_BASED_CUDA_CHECK: torch.cuda.is_available()
# asks NVML instead of initialising the driver, so the worker can keep forking CUDA-capable run children
# (fork_safety.py).
WORKER_ENVIRONMENT = {"PYTORCH_NVML_BASED_CUDA_CHECK": "1"}

@dataclass(frozen=True)
class ProfileRequest:
    run_id: int
    entry: str
    root: Optional[str]
    config: ProfileConfig


@dataclass(frozen=True)
class CancelRequest:
    run_id: int


@dataclass(frozen=True)
class ShutdownRequest:
    pass


# ---- events (worker -> parent) ---------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerReady:
    pid: int
    torch_version: str


@dataclass(frozen=True)
class RunStarted:
    run_id: int


@dataclass(frozen=True)
class RunProgress:
    run_id: int
    phase: str  # the phase now starting: "load" | "throughput" | "breakdown" | "memory" | "predictions"


@dataclass(frozen=True)
class RunReport:
    run_id: int
    report: Report  # everything measured so far; report.error set when the run failed
    phase: str  # the phase just finished ("error" when it failed)
    final: bool  # no more reports will come for this run


@dataclass(frozen=True)
class RunLog:
    run_id: Optional[int]
    stream: str  # "stdout" | "stderr"
    text: str


@dataclass(frozen=True)
class WorkerGone:
    """The worker process itself ended (crash, kill, or after shutdown)."""

    returncode: Optional[int]
    message: str


Event = Union[WorkerReady, RunStarted, RunProgress, RunReport, RunLog, WorkerGone]

_TYPES: dict[str, type] = {
    "profile": ProfileRequest,
    "cancel": CancelRequest,
    "shutdown": ShutdownRequest,
    "ready": WorkerReady,
    "started": RunStarted,
    "progress": RunProgress,
    "report": RunReport,
    "log": RunLog,
    "gone": WorkerGone,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


class ProtocolError(ValueError):
    pass


def encode(message: Any) -> bytes:
    """One message as one line of JSON (newline-terminated)."""
    payload: dict[str, Any] = {"type": _NAMES[type(message)]}
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        if isinstance(value, (Report, ProfileConfig)):
            value = value.to_dict()
        payload[f.name] = value
    return (json.dumps(payload, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def decode(line: bytes | str) -> Any:
    try:
        payload = json.loads(line)
        cls = _TYPES[payload.pop("type")]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from None
    if cls is RunReport:
        payload["report"] = Report.from_dict(payload["report"])
    elif cls is ProfileRequest:
        payload["config"] = ProfileConfig.from_dict(payload["config"])
    try:
        return cls(**payload)
    except TypeError as exc:
        raise ProtocolError(f"malformed {cls.__name__}: {exc}") from None


class LineBuffer:
    """Splits a byte stream into complete lines; a partial tail waits for more data."""

    def __init__(self, limit: int = 64 * 1024 * 1024):
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        if b"\n" not in data:
            if len(self._buf) > self._limit:
                raise ProtocolError("message too long")
            return []
        *lines, rest = self._buf.split(b"\n")
        self._buf = bytearray(rest)
        return [bytes(line) for line in lines if line]
