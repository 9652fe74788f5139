"""The pipe between the script's process and the launcher, and what both sides agree on.

Events go over a descriptor of their own, never the script's stdout or stderr.  Torch-free: both sides import it.
"""

from __future__ import annotations

import os
import signal
import time
import struct
from typing import Any, Optional, Sequence

from skyline_tui.run.events import encode, steps_line

# The launcher's settings for the child, as JSON in the environment (the child removes it before the script runs).
CONFIG_ENV = "SKYLINE_TUI_RUN"
# What the launcher passes on to the script (a kill aimed at the launcher), blocked in the launcher and unblocked
# in the child before the script runs.
FORWARDED_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT})
# Step lines are written together at most this often: a write per step would wake the launcher per step, and
# on a small model that costs the script a share of its CPU.  Any other event, and the end, write them at once.
FLUSH_EVERY_S = 0.05

# This process's id, kept by a fork handler: the hooks ask once a call (a forked DataLoader worker must stay
# silent), and ``os.getpid()`` is a system call each time.
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def current_pid() -> int:
    return _PID[0]


class Sender:
    """Writes events to the pipe, from the process that opened it only: a forked DataLoader worker inherits the
    descriptor and the hooks, and must stay silent.  A launcher that went away costs nothing but the events."""

    def __init__(self, fd: Optional[int]):
        self.fd = fd
        self.pid = os.getpid()
        self._pending: list[bytes] = []
        self._steps: list[bytes] = []  # packed step records not yet in ``_pending`` (events.PACKED_STEP_FIELDS)
        self._formats: dict[int, struct.Struct] = {}  # by a record's length
        self._flushed = 0.0
        if fd is not None:
            try:
                os.set_inheritable(fd, False)  # a program the script starts gets no copy
            except OSError:
                self.fd = None

    def send(self, event: Any) -> None:
        if self.fd is None or _PID[0] != self.pid:
            return
        self._seal()
        self._pending.append(encode(event))
        self.flush()

    def send_line(self, line: bytes, now: float) -> None:
        """A line already encoded (track.log's batches): written with the next ones unless ``FLUSH_EVERY_S`` has
        passed."""
        if self.fd is None or _PID[0] != self.pid:
            return
        self._seal()
        self._pending.append(line)
        if now - self._flushed >= FLUSH_EVERY_S:
            self.flush(now)

    def send_step(self, record: Sequence[float], now: float) -> None:
        """A step's packed record (the hot path: once a step, no formatting), sent like ``send_line``."""
        if self.fd is None or _PID[0] != self.pid:
            return
        packer = self._formats.get(len(record))
        if packer is None:
            packer = self._formats[len(record)] = struct.Struct(f"={len(record)}d")
        self._steps.append(packer.pack(*record))
        if now - self._flushed >= FLUSH_EVERY_S:
            self.flush(now)

    def _seal(self) -> None:
        if self._steps:
            self._pending.append(steps_line(b"".join(self._steps)))
            self._steps = []

    def flush(self, now: Optional[float] = None) -> None:
        if self.fd is None or _PID[0] != self.pid:
            return
        self._seal()
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending = []
        self._flushed = time.perf_counter() if now is None else now
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError:
            self.fd = None

    def close(self) -> None:
        self.flush()
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
