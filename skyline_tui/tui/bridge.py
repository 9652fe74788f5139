"""Carries profiler events from the source's thread to the app, as Textual messages.

``post_message`` is thread-safe, so every event becomes one message, except log lines: a user's print
loop can emit thousands per second, so they are buffered (newest kept, bounded) and announced by a single
:class:`LogsWaiting` until the app drains them.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from textual.message import Message

from skyline_tui.worker.protocol import Event, RunLog


class ProfilerEvent(Message):
    """A protocol event from the source's thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class LogsWaiting(Message):
    """Log lines are buffered; drain them with :meth:`EventBridge.drain_logs`."""


class EventBridge:
    """The ``on_event`` callback handed to the source; ``post`` is the app's ``post_message``."""

    def __init__(self, post: Callable[[Message], object], max_buffered_lines: int) -> None:
        self._post = post
        self._lock = threading.Lock()
        self._logs: deque[tuple[str, str]] = deque(maxlen=max_buffered_lines)
        self._announced = False

    def __call__(self, event: Event) -> None:
        if not isinstance(event, RunLog):
            self._post(ProfilerEvent(event))
            return
        with self._lock:
            self._logs.append((event.stream, event.text))
            announce, self._announced = not self._announced, True
        if announce:
            self._post(LogsWaiting())

    def drain_logs(self) -> list[tuple[str, str]]:
        with self._lock:
            chunks = list(self._logs)
            self._logs.clear()
            self._announced = False
        return chunks
