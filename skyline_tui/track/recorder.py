"""The buffer behind ``track.log``: records appended in memory, handed to a sink in batches.

One :class:`Tracker` per process.  ``log`` only checks the values and appends ``(step, name, value)``
tuples; every :data:`FLUSH_EVERY` records, at exit, and on :func:`flush`, the batch goes to the sink.  The
sink is chosen at the first flush (the run's event stream when one was installed, else the history store),
so ``import`` and ``log`` never touch the disk or import sqlite3.  Nothing here raises into the script:
a sink that fails costs one warning and the records are dropped, training goes on.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Any, Callable, Optional, Protocol

from skyline_tui.track.values import as_number, as_step, describe

TRACK_ENV = "SKYLINE_TUI_TRACK"  # "off": track.log records nothing, wherever it runs
_OFF = ("off", "none", "0", "no")
# A batch of 1,000 records is one SQLite transaction of a few milliseconds; a crash loses at most this many.
FLUSH_EVERY = 1000

Record = tuple[int, str, float]  # (step, metric name, value)


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
                 flush_every: int = FLUSH_EVERY) -> None:
        self.flush_every = flush_every
        self._lock = threading.Lock()
        self._buffer: list[Record] = []
        self._next_step = 0
        self._warned: set[str] = set()
        self._factory = sink_factory
        self._sink: Optional[Sink] = None
        self._sink_ready = False
        self._off = os.environ.get(TRACK_ENV, "").strip().lower() in _OFF
        self._exit_hooked = False
        self.current_step: Optional[Callable[[], Optional[int]]] = None  # a run's own step count, when known

    def use_sink(self, factory: Callable[[], Optional[Sink]],
                 current_step: Optional[Callable[[], Optional[int]]] = None) -> None:
        """Send records to the sink ``factory`` makes (called at the first flush); ``skyline-tui run``'s
        hooks install its event stream here before the script's first line.  ``current_step``: the run's
        own step count, used when ``log`` is given no step."""
        with self._lock:
            self._factory = factory
            self._sink, self._sink_ready = None, False
            self.current_step = current_step

    def log(self, step: Any = None, **metrics: Any) -> None:
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
            full = len(self._buffer) >= self.flush_every
            if not self._exit_hooked:
                self._exit_hooked = True
                atexit.register(self.close)
        if full:
            self.flush()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _warn(message)

    def flush(self) -> None:
        """Hand what is buffered to the sink now (the sink is made on the first flush)."""
        with self._lock:
            records, self._buffer = self._buffer, []
            if not records:
                return
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
        """At exit: the last batch out, then the sink closed."""
        self.flush()
        with self._lock:
            sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - at exit there is nobody left to tell
                pass

    def forget_after_fork(self) -> None:
        """In a forked child (a DataLoader worker): the parent's records are the parent's to write, and the
        parent's sink (an open SQLite file, the run's pipe) must not be shared.  The child records nothing."""
        self._lock = threading.Lock()
        self._buffer = []
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
    TRACKER.log(step, **metrics)


def flush() -> None:
    """Write what is buffered now (it is written every FLUSH_EVERY records and at exit anyway)."""
    TRACKER.flush()
