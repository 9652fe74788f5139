"""Leaving cleanly when the terminal goes away: SIGTERM and SIGHUP (an SSH drop) end the app like ``q``.

Python's default for both is to die on the spot: the terminal is left in raw mode and nothing is closed.
The worker would still go (EOF on its request pipe), but a clean exit also restores the terminal, stops
the file watcher and waits for the worker.  The handler asks the app's event loop to exit (through
``call_soon_threadsafe``, which is safe to call from a signal handler) and arms a fallback: if the app has
not exited within ``grace_s`` (a terminal that hung up can make the last writes fail in odd ways), the
fallback closes the workers itself and ends the process.  SIGKILL cannot be caught; the worker's pipe
handles that case.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable, Optional

EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class ExitOnSignals:
    """``with ExitOnSignals(request_exit, close):`` around ``app.run()``; restores the old handlers after.

    ``request_exit(code)`` must be safe to call from a signal handler; ``close()`` stops the workers.
    """

    def __init__(self, request_exit: Callable[[int], None], close: Callable[[], None], grace_s: float = 5.0,
                 signals: tuple[signal.Signals, ...] = EXIT_SIGNALS) -> None:
        self._request_exit = request_exit
        self._close = close
        self._grace_s = grace_s
        self._signals = signals
        self._previous: dict[int, object] = {}
        self._left = threading.Event()  # the with-block ended: the fallback has nothing to do
        self.received: Optional[int] = None

    @property
    def exit_code(self) -> Optional[int]:
        """128 + the signal number, as a shell reports a process ended by that signal; None if none came."""
        return None if self.received is None else 128 + self.received

    def __enter__(self) -> "ExitOnSignals":
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._left.set()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.received is not None:
            return  # already leaving; a second SIGHUP (the shell's, then the terminal's) changes nothing
        self.received = signum
        threading.Thread(target=self._fallback, daemon=True, name="skyline-exit-fallback").start()
        try:
            self._request_exit(128 + signum)
        except Exception:  # noqa: BLE001 - the fallback still ends the process
            pass

    def _fallback(self) -> None:
        if self._left.wait(self._grace_s):
            return
        try:
            self._close()
        finally:
            os._exit(128 + (self.received or 0))
