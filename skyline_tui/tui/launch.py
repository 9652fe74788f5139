"""Running the app for real: worker clients that are always closed, and a clean exit on SIGTERM/SIGHUP.

Kept apart from app.py so the app itself takes any source (tests pass fakes) and this module alone
knows about processes and signals.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable, Optional

from skyline_tui.tui.app import SkylineApp
from skyline_tui.config import ProfileConfig
from skyline_tui.worker.protocol import Event


def run_app(entry: str, root: Optional[str], config: ProfileConfig, *, watch: bool = True,
            history_path: Optional[Path] = None) -> int:
    """`skyline-tui ENTRY`: the interactive profiler, until the user quits (or the terminal goes away).

    Returns the exit status: 128 + the signal's number after SIGTERM or SIGHUP.  Every worker started is
    closed on the way out, whether the app quit, crashed or was signalled.
    """
    from skyline_tui.tui.history_sink import HistorySink
    from skyline_tui.tui.shutdown import ExitOnSignals
    from skyline_tui.worker.client import WorkerClient  # spawns the torch process; imports no torch here

    clients: list[WorkerClient] = []

    def worker_client(on_event: Callable[[Event], None]) -> WorkerClient:
        client = WorkerClient(on_event)
        clients.append(client)
        return client

    def close_workers() -> None:
        for client in clients:  # every worker stops at once; then wait for each (already going)
            client.shutdown()
        for client in clients:
            client.close()

    app = SkylineApp(entry, root, config, source=worker_client, watch=watch, history=HistorySink(history_path))

    # The app runs on a loop of ours (App.run's public ``loop`` argument), so a signal handler can reach it:
    # call_soon_threadsafe is safe to call from one, and wakes the loop.
    loop = asyncio.new_event_loop()

    def request_exit(code: int) -> None:
        loop.call_soon_threadsafe(lambda: app.exit(return_code=code))

    with ExitOnSignals(request_exit, close_workers) as signals:
        try:
            app.run(loop=loop)
        finally:
            close_workers()
            _close_loop(loop)
    return signals.exit_code or app.return_code or 0


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does after its coroutine: async generators and the default executor's threads
    finished, then the loop closed."""
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
