"""The buffer behind ``track.log``: records appended in memory, handed to a sink in batches.

One :class:`Tracker` per process.  ``log`` only checks the values and appends ``(step, name, value)``
tuples; every :data:`FLUSH_EVERY` records, at exit, and on :func:`flush`, the batch goes to the sink.

- Plain run: the sink is the history store, written by a background thread (made at the first batch),
  so the training thread never waits for SQLite (a few microseconds a row here) nor for git (the run's
  provenance).  ``import`` and ``log`` never touch the disk or import sqlite3.
- Under ``skyline-tui run``: the run's hooks install the event stream with :meth:`Tracker.use_sink`; a
  batch is written on the calling thread (one line on the run's pipe, in order with the step events), and
  also every ``max_delay_s`` so the live view sees the metrics as they come.

Nothing here raises into the script: a sink that fails costs one warning and the records are dropped,
training goes on.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from typing import Any, Callable, Optional, Protocol

from skyline_tui.track.values import Record, as_number, as_step, describe

TRACK_ENV = "SKYLINE_TUI_TRACK"  # "off": track.log records nothing, wherever it runs
_OFF = ("off", "none", "0", "no")
# A batch of 1,000 records is one SQLite transaction of a few milliseconds; a crash loses at most this many.
FLUSH_EVERY = 1000



class Sink(Protocol):
    """Where batches of records go: the history store (plain run) or the run's event stream."""

    def write(self, records: list[Record]) -> None: ...

    def close(self) -> None: ...


def _warn(message: str) -> None:
    try:
        print(f"skyline-tui track: warning: {message}", file=sys.stderr, flush=True)
    except Exception:  # noqa: BLE001 - a closed stderr must not crash training either
        pass


class Tracker:
    def __init__(self, sink_factory: Optional[Callable[[], Optional[Sink]]] = None,
                 flush_every: int = FLUSH_EVERY, background: Optional[bool] = None) -> None:
        """``sink_factory``: default, the history store (a plain run).  ``background``: write batches on a
        thread of ours (default: for the history store only)."""
        self.flush_every = flush_every
        self._lock = threading.Lock()
        self._buffer: list[Record] = []
        self._next_step = 0
        self._warned: set[str] = set()
        self._factory = sink_factory
        self._background = sink_factory is None if background is None else background
        self._sink: Optional[Sink] = None
        self._sink_ready = False
        self._off = os.environ.get(TRACK_ENV, "").strip().lower() in _OFF
        self._exit_hooked = False
        self._write_lock = threading.Lock()
        self._queue: Any = None  # queue.Queue of batches for the background writer (plain run), once started
        self._thread: Optional[threading.Thread] = None
        self.max_delay_s: Optional[float] = None  # also flush when the last flush is this old (run mode)
        self._last_flush = time.monotonic()
        self.current_step: Optional[Callable[[], Optional[int]]] = None  # a run's own step count, when known

    def use_sink(self, factory: Callable[[], Optional[Sink]],
                 current_step: Optional[Callable[[], Optional[int]]] = None,
                 max_delay_s: Optional[float] = None) -> None:
        """Send records to the sink ``factory`` makes (called at the first flush), on the calling thread;
        ``skyline-tui run``'s hooks install its event stream here before the script's first line.
        ``current_step``: the run's own step count, used when ``log`` is given no step."""
        with self._lock:
            self._factory, self._background = factory, False
            self._sink, self._sink_ready = None, False
            self.current_step = current_step
            self.max_delay_s = max_delay_s

    def log(self, step: Any = None, **metrics: Any) -> None:
        self.record(step, metrics)

    def record(self, step: Any, metrics: dict[str, Any]) -> None:
        """``log`` with the metrics as a dict (the module's ``log`` calls this: no second keyword packing)."""
        if self._off:
            return
        try:
            self._log(step, metrics)
        except Exception as exc:  # noqa: BLE001 - tracking must never end a training run
            self._warn_once("internal", f"track.log failed ({type(exc).__name__}: {exc}); records may be lost")

    def _log(self, step: Any, metrics: dict[str, Any]) -> None:
        number: int
        if step is None:
            own = self.current_step() if self.current_step is not None else None
            number = self._next_step if own is None else own
        else:
            given = as_step(step)
            if given is None:
                self._warn_once("step", f"step must be a non-negative integer, not {describe(step)}; "
                                        f"the next step ({self._next_step}) is used (this warning once)")
            number = self._next_step if given is None else given
        self._next_step = number + 1
        rows = []
        for name, value in metrics.items():
            kind = type(value)
            if kind is float or kind is int:
                rows.append((number, name, float(value)))
                continue
            converted = as_number(value)
            if converted is None:
                self._warn_once(f"key:{name}", f"{name}={describe(value)} is not a number; skipped "
                                                f"(this warning once for {name!r})")
                continue
            rows.append((number, name, converted))
        if not rows:
            return
        with self._lock:
            self._buffer.extend(rows)
            due = len(self._buffer) >= self.flush_every or (
                self.max_delay_s is not None and time.monotonic() - self._last_flush >= self.max_delay_s)
            if not self._exit_hooked:
                self._exit_hooked = True
                atexit.register(self.close)
        if due:
            self._hand_off(wait=False)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _warn(message)

    def flush(self) -> None:
        """Hand what is buffered to the sink now, and return once it is written."""
        self._hand_off(wait=True)

    def _hand_off(self, wait: bool) -> None:
        with self._lock:
            records, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
        if not self._background:  # a run's stream: in order, on this thread
            if records:
                self._write(records)
            return
        if records:
            self._writer_queue().put(records)
        if wait and self._queue is not None:
            self._queue.join()

    def _writer_queue(self) -> Any:
        if self._queue is None:
            import queue

            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._write_batches, name="skyline-tui-track", daemon=True)
            self._thread.start()
        return self._queue

    def _write_batches(self) -> None:
        batches = self._queue
        while True:
            batch = batches.get()
            try:
                if batch is None:
                    return
                self._write(batch)
            finally:
                batches.task_done()

    def _write(self, records: list[Record]) -> None:
        with self._write_lock:
            sink = self._ensure_sink()
            if sink is None:
                return
            try:
                sink.write(records)
            except Exception as exc:  # noqa: BLE001 - one warning, then the sink is given up
                self._sink = None
                self._warn_once("sink", f"metrics not recorded ({' '.join(str(exc).split()) or type(exc).__name__});"
                                        " tracking goes on without recording")

    def _ensure_sink(self) -> Optional[Sink]:
        if self._sink_ready:
            return self._sink
        self._sink_ready = True
        factory = self._factory or _plain_run_sink
        try:
            self._sink = factory()
        except Exception as exc:  # noqa: BLE001 - same rule as a failing write
            self._sink = None
            self._warn_once("sink", f"metrics not recorded ({' '.join(str(exc).split()) or type(exc).__name__})")
        return self._sink

    def close(self) -> None:
        """At exit: the last batch out, the writer stopped, then the sink closed."""
        self.flush()
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join(timeout=30.0)
            self._thread, self._queue = None, None
        with self._write_lock:
            sink, self._sink = self._sink, None
            self._sink_ready = False
        if sink is not None:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - at exit there is nobody left to tell
                pass

    def forget_after_fork(self) -> None:
        """In a forked child (a DataLoader worker): the parent's records are the parent's to write, and the
        parent's sink (an open SQLite file, the run's pipe) must not be shared.  The child records nothing."""
        self._lock, self._write_lock = threading.Lock(), threading.Lock()
        self._buffer = []
        self._queue, self._thread = None, None  # the writer thread is the parent's; none came along
        self._sink, self._sink_ready, self._off = None, True, True


def _plain_run_sink() -> Optional[Sink]:
    from skyline_tui.track.store_sink import StoreSink

    return StoreSink.for_this_process()


TRACKER = Tracker()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: TRACKER.forget_after_fork())


def log(step: Any = None, **metrics: Any) -> None:
    """Record ``metrics`` (name=number) at ``step`` (default: the run's step under ``skyline-tui run``,
    else one more than the last step logged, from 0).  Never raises; a non-number is skipped with one
    warning per key."""
    TRACKER.record(step, metrics)


def flush() -> None:
    """Write what is buffered now (it is written every FLUSH_EVERY records and at exit anyway)."""
    TRACKER.flush()
