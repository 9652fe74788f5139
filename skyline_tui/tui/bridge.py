"""The profiler source as the app sees it, and its events carried to the app as Textual messages.

``post_message`` is thread-safe, so every event becomes one message, except log lines: a user's print
loop can emit thousands per second, so they are buffered (newest kept, bounded) and announced by a single
:class:`LogsWaiting` until the app drains them.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Optional, Protocol, Union

from textual.message import Message

from skyline_tui.config import ProfileConfig
from skyline_tui.worker.protocol import Event, RunLog, RunProgress, RunReport, RunStarted, WorkerGone, WorkerReady


class ProfileSource(Protocol):
    """Where reports come from: the worker client in real use, a replaying fake in tests.

    It is built by a factory that receives the callback, ``factory(on_event)``; ``on_event`` may be called
    on any thread.  ``WorkerClient`` itself is such a factory.  ``start`` must be idempotent: the app
    calls it again before a submit, which brings a worker that went away back.
    """

    def start(self) -> None: ...

    def submit(self, entry: str, root: Optional[str], config: ProfileConfig) -> int: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


SourceFactory = Callable[[Callable[[Event], None]], ProfileSource]


# What the bridge posts to the app one by one: every event but the log lines, which it buffers (LogsWaiting).
PostedEvent = Union[WorkerReady, RunStarted, RunProgress, RunReport, WorkerGone]


class ProfilerEvent(Message):
    """A protocol event from the source's thread."""

    def __init__(self, event: PostedEvent) -> None:
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
