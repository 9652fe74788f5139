"""Profile on save, the app's side: a :class:`~skyline_tui.tui.watch.ProjectWatcher` whose settled bursts of
saves become ``request_profile`` calls, and the ``s`` key that turns it on and off.

A mixin rather than more of app.py: it only needs ``project_root``, ``request_profile`` and the status
bar.  The watcher's thread never touches the UI: it posts a :class:`FilesSaved` message (thread-safe and
non-blocking, so stopping the watcher while the app shuts down cannot deadlock).  The request itself
cancels a run under way (the worker cancels on every new submit), so a save mid-profile restarts it on
the new content, and a burst of saves ends in one profile.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

from textual import work
from textual.message import Message

from skyline_tui.tui.watch import DEFAULT_DEBOUNCE_S, ProjectWatcher


class FilesSaved(Message):
    """Project files changed on disk (absolute paths); posted from the watcher's thread."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__()
        self.paths = paths


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
    """Mixed into SkylineApp.  Call ``_init_profile_on_save`` in ``__init__``, ``_apply_profile_on_save``
    once mounted, and ``_stop_watching`` on unmount."""

    SAVE_DEBOUNCE_S = DEFAULT_DEBOUNCE_S

    def _init_profile_on_save(self, enabled: bool) -> None:
        self.profile_on_save = enabled
        self.saves_seen = 0  # settled bursts of saves that asked for a profile
        self._watcher: Optional[ProjectWatcher] = None
        self._watcher_lock = threading.Lock()
        self._watching_over = False  # the app is unmounting: never start a watcher again

    @property
    def watching(self) -> bool:
        """Whether the project is being watched right now (the watcher has started)."""
        watcher = self._watcher
        return watcher is not None and watcher.running

    def action_toggle_profile_on_save(self) -> None:
        self.profile_on_save = not self.profile_on_save
        self.notify(f"Profile on save: {'on' if self.profile_on_save else 'off'}", timeout=2)
        self._render_status()  # type: ignore[attr-defined]
        self._apply_profile_on_save()

    @work(thread=True, group="watch", exit_on_error=False)
    def _apply_profile_on_save(self) -> None:
        """Start or stop the watcher to match ``profile_on_save`` (off the UI thread: the first snapshot
        of a big project and the inotify set-up take a moment)."""
        problem: Optional[Exception] = None
        with self._watcher_lock:  # never wait on the UI thread in here: unmounting takes this lock
            if self._watching_over:
                return
            if self.profile_on_save and self._watcher is None:
                watcher = ProjectWatcher(str(self.project_root), self._files_changed,  # type: ignore[attr-defined]
                                         debounce_s=self.SAVE_DEBOUNCE_S)
                try:
                    watcher.start()
                except Exception as exc:  # noqa: BLE001 - e.g. the inotify watch limit: say so, keep going
                    problem = exc
                    self.profile_on_save = False
                    watcher.stop()
                else:
                    self._watcher = watcher
            elif not self.profile_on_save and self._watcher is not None:
                watcher, self._watcher = self._watcher, None
                watcher.stop()
        if problem is not None:
            self.call_from_thread(self.notify, f"cannot watch the project: {problem}",  # type: ignore[attr-defined]
                                  title="Profile on save is off", severity="warning")
        self.call_from_thread(self._render_status)  # type: ignore[attr-defined]

    def _stop_watching(self) -> None:
        with self._watcher_lock:
            self._watching_over = True
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def _files_changed(self, paths: list[str]) -> None:
        """On the watcher's thread."""
        self.post_message(FilesSaved(paths))  # type: ignore[attr-defined]

    def on_files_saved(self, message: FilesSaved) -> None:
        if not self.profile_on_save:
            return  # turned off while this burst was settling
        self.saves_seen += 1
        self._reload_shown_source(message.paths)
        self.request_profile(describe_saves(message.paths, self.project_root))  # type: ignore[attr-defined]

    def _reload_shown_source(self, paths: list[str]) -> None:
        from skyline_tui.tui.views.source import SourceView

        source = self.query_one(SourceView)  # type: ignore[attr-defined]
        if source.file is None:
            return
        shown = self.project_root / source.file  # type: ignore[attr-defined]
        if any(Path(path) == shown.resolve() for path in paths):
            source.show_file(shown, source.file)  # re-read: it changed on disk; the cursor stays
