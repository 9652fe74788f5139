"""Profile on save, the app's side: an object the app owns that watches the project and posts messages.

Messages up, attributes down: the app tells it whether to watch (:meth:`ProfileOnSave.apply`, off the UI
thread: the first snapshot of a big project and the inotify set-up take a moment) and it answers with
messages only: :class:`FilesSaved` for each settled burst of saves and :class:`WatchingChanged` once the
watcher has started or stopped (or could not start).  ``post`` is the app's ``post_message``: thread-safe
and non-blocking, so stopping the watcher while the app shuts down cannot deadlock.  The profile a save
asks for cancels a run under way (the worker cancels on every new submit), so a save mid-profile restarts
it on the new content, and a burst of saves ends in one profile.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Optional

from textual.message import Message

from skyline_tui.tui.watch import DEFAULT_DEBOUNCE_S, ProjectWatcher


class FilesSaved(Message):
    """Project files changed on disk (absolute paths); posted from the watcher's thread."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__()
        self.paths = paths


class WatchingChanged(Message):
    """The watcher started or stopped; ``problem`` says why it could not start (then it is off)."""

    def __init__(self, watching: bool, problem: Optional[str] = None) -> None:
        super().__init__()
        self.watching = watching
        self.problem = problem


def describe_saves(paths: list[str], root: Path) -> str:
    """The reason a save-triggered profile gives: 'saved model.py', 'saved 3 files'."""
    if len(paths) == 1:
        path = Path(paths[0])
        try:
            return f"saved {path.relative_to(root)}"
        except ValueError:
            return f"saved {path.name}"
    return f"saved {len(paths)} files"


class ProfileOnSave:
    """Watches ``root`` while asked to; reports through ``post`` only."""

    def __init__(self, root: Path, post: Callable[[Message], object], debounce_s: float = DEFAULT_DEBOUNCE_S) -> None:
        self.root = root
        self.debounce_s = debounce_s
        self._post = post
        self._watcher: Optional[ProjectWatcher] = None
        self._lock = threading.Lock()
        self._closed = False  # the app is unmounting: never start a watcher again

    @property
    def watcher(self) -> Optional[ProjectWatcher]:
        return self._watcher

    @property
    def watching(self) -> bool:
        """Whether the project is being watched right now (the watcher has started)."""
        watcher = self._watcher
        return watcher is not None and watcher.running

    def apply(self, enabled: bool) -> None:
        """Start or stop watching to match ``enabled``; blocks, so call it from a worker thread."""
        problem: Optional[str] = None
        with self._lock:  # never called on the UI thread: closing takes this lock
            if self._closed:
                return
            if enabled and self._watcher is None:
                watcher = ProjectWatcher(str(self.root), self._files_changed, debounce_s=self.debounce_s)
                try:
                    watcher.start()
                except Exception as exc:  # noqa: BLE001 - e.g. the inotify watch limit: say so, keep going
                    problem = str(exc)
                    watcher.stop()
                else:
                    self._watcher = watcher
            elif not enabled and self._watcher is not None:
                watcher, self._watcher = self._watcher, None
                watcher.stop()
            watching = self._watcher is not None
        self._post(WatchingChanged(watching, problem))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def _files_changed(self, paths: list[str]) -> None:
        """On the watcher's thread."""
        self._post(FilesSaved(paths))
