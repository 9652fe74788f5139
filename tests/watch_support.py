"""Waiting for the project watcher without timing it: a sentinel write, then its own quiet signal."""

from __future__ import annotations

import time
from pathlib import Path

from skyline_tui.watch import ProjectWatcher


def settle(watcher: ProjectWatcher, root: Path, timeout: float = 30.0) -> None:
    """Wait until the watcher has seen everything written so far and acted on it.

    Writes an ignored sentinel file: inotify delivers events in order, so once the watcher has seen it,
    it has seen every earlier write; then waits until its debounce has nothing pending.
    """
    sentinel = Path(root) / f"sentinel-{time.monotonic_ns()}.txt"
    sentinel.write_text("x")
    deadline = time.monotonic() + timeout
    while watcher.last_event_path != str(sentinel):
        assert time.monotonic() < deadline, "the watcher never saw the sentinel"
        time.sleep(0.01)
    assert watcher.wait_until_quiet(max(0.1, deadline - time.monotonic())), "the watcher never went quiet"
    sentinel.unlink()
