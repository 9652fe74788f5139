"""Waiting for the project watcher without timing it: a sentinel write, then its own quiet signal."""

from __future__ import annotations

import time
from pathlib import Path

from skyline_tui.tui.watch import ProjectWatcher


def settle(watcher: ProjectWatcher, root: Path, timeout: float = 30.0) -> None:
    """Wait until the watcher has seen everything written so far and acted on it.

    Writes an ignored sentinel file into every watched folder: inotify delivers each folder's events in
    order, so once the watcher has seen them all, it has seen every earlier write; then waits until its
    debounce has nothing pending.
    """
    stamp = time.monotonic_ns()
    sentinels = []
    for folder in list(watcher._watches) or [root]:
        sentinel = Path(folder) / f"sentinel-{stamp}.txt"
        try:
            sentinel.write_text("x")
        except FileNotFoundError:  # a folder just moved or deleted: its watch is on the way out
            continue
        sentinels.append(sentinel)
    deadline = time.monotonic() + timeout
    while not all(str(sentinel) in watcher.recent_paths for sentinel in sentinels):
        assert time.monotonic() < deadline, "the watcher never saw the sentinel"
        time.sleep(0.01)
    assert watcher.wait_until_quiet(max(0.1, deadline - time.monotonic())), "the watcher never went quiet"
    for sentinel in sentinels:
        sentinel.unlink(missing_ok=True)
