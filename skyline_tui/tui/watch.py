"""Profile on save: watch the project's Python files and report each burst of saves once, when it settles.

Three layers, each testable on its own:

- :func:`is_project_source` decides, from the path alone, whether a file is project code worth a
  re-profile (``.py`` files outside ``.git``, ``__pycache__``, virtualenvs, and not editor droppings);
  the walks that find folders to watch also skip any virtualenv and data folders (:func:`is_skipped_folder`).
- :class:`SaveDebouncer` is a pure trailing-edge debouncer with the clock passed in: the paths noted
  during a burst come out together, once nothing new has been noted for ``quiet_s`` (``written_quiet_s``
  after an event that says a file was written whole).
- :class:`ProjectWatcher` feeds watchdog's events into a debouncer on a thread of its own and, when a
  burst settles, calls ``on_change`` with the files whose contents really changed.

"Really changed" is judged by a stat signature (inode, size, mtime), not by the event alone: on Linux a
mere read can update the access time, which inotify reports as a modification, so the profile run reading
the entry point would otherwise trigger the next profile.  A save by rename (vim's backupcopy, IDEs that
write a temp file and move it over the original) gives the target a new inode, so it counts as a change.

Imports neither torch nor textual: the app wires ``on_change`` to ``request_profile``.
"""

from __future__ import annotations

import collections
import os
import stat
import threading
import time
from pathlib import PurePath
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, cast

if TYPE_CHECKING:  # watchdog itself is imported when the watcher starts (picking its backend costs)
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers.api import BaseObserver, ObservedWatch

# A save is a burst of events over a few milliseconds (write, or write a temp file and rename): 80 ms of
# quiet ends it with room to spare, and every millisecond here is one the user waits for the first number.
DEFAULT_DEBOUNCE_S = 0.08
# Once the writer has closed a source file (inotify's IN_CLOSE_WRITE), or a rename has put one in place (an
# atomic save), that file is whole, and a shorter quiet could end the burst (60 of the 80 ms in the app).  Not
# by default: saves 40 ms apart (a formatter rewriting on save, a storm) then each settle, and a profile that
# starts between two of them can read the file while the next write has truncated it (the app showed "entry.py
# has no skyline_model_provider()" before the final profile: test_app_live's fifty saves).  The watcher takes
# a shorter ``written_debounce_s`` where the writer is known to write whole files; by default the quiet is
# ``debounce_s`` for every event (a longer one included: it had stayed 80 ms for closed files).

# Folders whose files are never the user's project code (or are written by running it).
IGNORED_DIRS = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "site-packages", "dist-packages",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".ipynb_checkpoints", "node_modules",
    ".skyline-tui", "wandb", "mlruns", "lightning_logs",
})
# Where training data usually lives: thousands of folders a root at the project's top would walk and watch.
# Skipped unless they are Python packages (``data/__init__.py``: a loader module the model imports).
DATA_DIRS = frozenset({"data", "datasets", "dataset"})
VENV_MARKER = "pyvenv.cfg"  # a virtualenv by any name (env/, .env-3.11/) holds one at its top
# Editor droppings that do end in .py: emacs lock files (symlinks named .#entry.py).
EDITOR_TEMP_PREFIXES = (".#",)
# Swap, backup and probe files: vim's .swp/.swx and "4913", "entry.py~" backups.  None ends in ".py",
# so the suffix test already rejects them; they are listed to say what the rule is for.
EDITOR_TEMP_SUFFIXES = (".swp", ".swx", "~")
EDITOR_TEMP_NAMES = frozenset({"4913"})

Signature = tuple[int, int, int]  # (inode, size, mtime in ns)


def is_project_source(path: str, root: str) -> bool:
    """Whether a change to ``path`` (absolute, or relative to ``root``) should re-profile the project."""
    relative = os.path.relpath(os.path.join(root, path), root)
    parts = PurePath(relative).parts
    if not parts or parts[0] == os.pardir:
        return False  # outside the project
    *folders, name = parts
    if any(folder in IGNORED_DIRS for folder in folders):
        return False
    if name in EDITOR_TEMP_NAMES or name.endswith(EDITOR_TEMP_SUFFIXES) or name.startswith(EDITOR_TEMP_PREFIXES):
        return False
    return name.endswith(".py")


def is_project_folder(path: str, root: str) -> bool:
    """Whether files in folder ``path`` could be project sources (it is under ``root``, not ignored)."""
    relative = os.path.relpath(os.path.join(root, path), root)
    parts = PurePath(relative).parts
    return not parts or (parts[0] != os.pardir and not any(part in IGNORED_DIRS for part in parts))


def file_signature(path: str) -> Optional[Signature]:
    """What identifies one version of a file: None when it is gone (or not a regular file)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def is_skipped_folder(folder: str) -> bool:
    """Whether the walk should not enter ``folder``: an ignored name, a virtualenv, or a data folder that is
    not a Python package.  Looks at the disk (unlike ``is_project_folder``), so it runs once per folder."""
    name = os.path.basename(folder)
    if name in IGNORED_DIRS or os.path.exists(os.path.join(folder, VENV_MARKER)):
        return True
    return name in DATA_DIRS and not os.path.exists(os.path.join(folder, "__init__.py"))


def _walk_project(top: str) -> Iterator[tuple[str, list[str]]]:
    """(folder, file names) for ``top`` and each folder below it that is not skipped."""
    for folder, subfolders, files in os.walk(top):
        subfolders[:] = [name for name in subfolders if not is_skipped_folder(os.path.join(folder, name))]
        yield folder, files


def project_folders(top: str, root: str) -> list[str]:
    """``top`` and every folder below it that may hold project sources (ignored folders are not entered)."""
    if not is_project_folder(top, root) or (top != root and is_skipped_folder(top)):
        return []
    return [folder for folder, _files in _walk_project(top) if is_project_folder(folder, root)]


def project_sources(root: str) -> dict[str, Signature]:
    """The signature of every project source file under ``root`` (ignored folders are not entered)."""
    found: dict[str, Signature] = {}
    for folder, files in _walk_project(root):
        for name in files:
            path = os.path.join(folder, name)
            if is_project_source(path, root):
                signature = file_signature(path)
                if signature is not None:
                    found[path] = signature
    return found


class SaveDebouncer:
    """Collects paths during a burst of events; hands them out once ``quiet_s`` passes without a new one.

    Pure: every method takes the current time, so tests drive it with a made-up clock.
    """

    def __init__(self, quiet_s: float, written_quiet_s: Optional[float] = None) -> None:
        self.quiet_s = quiet_s
        self.written_quiet_s = quiet_s if written_quiet_s is None else min(quiet_s, written_quiet_s)
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._due: Optional[float] = None
        self.rescan = False  # a folder moved or vanished: compare every file, not just the noted ones

    def note(self, paths: Iterable[str], now: float, rescan: bool = False, written: bool = False) -> None:
        """``written``: the event says its file is whole (closed after writing, or renamed into place)."""
        for path in paths:
            self._pending[path] = None
        self.rescan = self.rescan or rescan
        self._due = now + (self.written_quiet_s if written else self.quiet_s)

    @property
    def pending(self) -> bool:
        return bool(self._pending) or self.rescan

    def due_at(self) -> Optional[float]:
        """When the pending burst will be due (None: nothing pending)."""
        if not self.pending:
            return None
        return self._due

    def take_if_due(self, now: float) -> Optional[tuple[list[str], bool]]:
        """The burst's paths and whether to rescan, if it has settled; None while it is still going."""
        due = self.due_at()
        if due is None or now < due:
            return None
        burst, rescan = list(self._pending), self.rescan
        self._pending.clear()
        self.rescan = False
        return burst, rescan


class ProjectWatcher:
    """Calls ``on_change(paths)`` (on its own thread) after each settled burst of saves under ``root``.

    ``paths`` are the project source files whose signature changed since the last call (created, edited,
    replaced by a rename, or deleted), sorted.  A burst that changed nothing (an access-time update, a
    temp file created and removed) calls nothing.
    """

    def __init__(self, root: str, on_change: Callable[[list[str]], None],
                 debounce_s: float = DEFAULT_DEBOUNCE_S, clock: Callable[[], float] = time.monotonic,
                 written_debounce_s: Optional[float] = None) -> None:
        self.root = os.path.realpath(root)
        self._on_change = on_change
        self._clock = clock
        self._debouncer = SaveDebouncer(debounce_s, written_debounce_s)
        self._signatures: dict[str, Signature] = {}
        self._wakeup = threading.Condition()
        self._stopping = False
        self._busy = False  # comparing signatures or inside on_change
        self._observer: Optional[BaseObserver] = None
        self._handler: Optional[_EventForwarder] = None
        self._watches: dict[str, ObservedWatch] = {}  # folder -> its watch
        self._thread: Optional[threading.Thread] = None
        self.events_received = 0  # every filesystem event, ignored or not (tests wait on it)
        self.last_event_path: Optional[str] = None
        self.recent_paths: collections.deque[str] = collections.deque(maxlen=512)  # tests wait on these
        self.changes_reported = 0  # on_change calls made

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Take a snapshot of the project's files, then watch.  Idempotent."""
        if self._thread is not None:
            return
        from watchdog.observers import Observer  # imported late: picking the platform's backend costs

        self._signatures = project_sources(self.root)
        self._stopping = False
        observer = Observer()
        self._observer = observer
        # One non-recursive watch per project folder, not one recursive watch of the root: a recursive
        # watch also places an inotify watch in every folder of a .venv inside the project (thousands
        # with torch installed), which can exhaust the user's inotify limit.
        self._handler = _EventForwarder(self._on_event)
        self._watches = {}
        self._watch_tree(self.root)
        observer.daemon = True
        observer.start()
        self._thread = threading.Thread(target=self._settle_loop, daemon=True, name="skyline-watch")
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; a burst not yet settled is dropped.  Idempotent."""
        thread, observer = self._thread, self._observer
        self._thread, self._observer = None, None
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify_all()
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._wakeup:  # a burst that never settled is dropped, so nobody waits on it
            self._debouncer = SaveDebouncer(self._debouncer.quiet_s, self._debouncer.written_quiet_s)
            self._wakeup.notify_all()

    def wait_until_quiet(self, timeout: float) -> bool:
        """Wait until no burst is pending and ``on_change`` is not running; False if that took too long."""
        deadline = time.monotonic() + timeout
        with self._wakeup:
            while self._debouncer.pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wakeup.wait(min(left, 0.05))
        return True

    # ---- internals --------------------------------------------------------------------------------

    def _watch_tree(self, top: str) -> None:
        observer = self._observer
        if observer is None:
            return
        for folder in project_folders(top, self.root):
            if folder not in self._watches:
                try:
                    # Duck-typed: watchdog only ever calls the handler's dispatch().
                    handler = cast("FileSystemEventHandler", self._handler)
                    self._watches[folder] = observer.schedule(handler, folder, recursive=False)
                except OSError:  # gone already, or out of inotify watches: the rescan still sees its files
                    pass

    def _unwatch_tree(self, top: str) -> None:
        observer = self._observer
        for folder in [f for f in self._watches if f == top or f.startswith(top + os.sep)]:
            watch = self._watches.pop(folder)
            if observer is not None:
                try:
                    observer.unschedule(watch)
                except (KeyError, OSError):
                    pass

    def _on_event(self, paths: list[str], folder_changed: bool, written: bool = False) -> None:
        """On watchdog's thread: note the relevant paths of one event and wake the settling thread.  ``written``:
        the event's last path is a file written whole (closed after writing, or the target of a rename)."""
        if folder_changed:
            # Folders moved away or deleted lose their watches; folders created or moved in get theirs.
            # (Files written into a new folder before its watch exists are found by the rescan below.)
            for path in paths:
                if os.path.isdir(path):
                    self._watch_tree(path)
                else:
                    self._unwatch_tree(path)
            folder_changed = any(is_project_folder(path, self.root) for path in paths)
        relevant = [path for path in paths if is_project_source(path, self.root)]
        with self._wakeup:
            self.events_received += 1
            self.last_event_path = paths[-1] if paths else None
            self.recent_paths.extend(paths)
            if relevant or folder_changed:
                whole = written and not folder_changed and bool(paths) and paths[-1] in relevant
                self._debouncer.note(relevant, self._clock(), rescan=folder_changed, written=whole)
            self._wakeup.notify_all()

    def _settle_loop(self) -> None:
        while True:
            with self._wakeup:
                while True:
                    if self._stopping:
                        return
                    burst = self._debouncer.take_if_due(self._clock())
                    if burst is not None:
                        self._busy = True
                        break
                    due = self._debouncer.due_at()
                    self._wakeup.wait(None if due is None else max(0.001, due - self._clock()))
            try:
                changed = self._changed_files(*burst)
                if changed and not self._stopping:
                    self.changes_reported += 1
                    self._on_change(changed)
            except Exception:  # noqa: BLE001 - a failing callback must not end profile-on-save
                pass
            finally:
                with self._wakeup:
                    self._busy = False
                    self._wakeup.notify_all()

    def _changed_files(self, paths: list[str], rescan: bool) -> list[str]:
        if rescan:
            now = project_sources(self.root)
            changed = {path for path in set(now) | set(self._signatures) if now.get(path) != self._signatures.get(path)}
            self._signatures = now
            return sorted(changed)
        changed = set()
        for path in paths:
            signature = file_signature(path)
            if signature != self._signatures.get(path):
                changed.add(path)
                if signature is None:
                    self._signatures.pop(path, None)
                else:
                    self._signatures[path] = signature
        return sorted(changed)


class _EventForwarder:
    """The watchdog handler: hands each event's paths (a move has two) to the watcher."""

    def __init__(self, forward: Callable[[list[str], bool, bool], None]) -> None:
        self._forward = forward

    def dispatch(self, event: FileSystemEvent) -> None:  # watchdog calls dispatch() for every event
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return  # reads, not writes (the profiler reading the entry point must not re-profile it)
        paths = [os.fsdecode(event.src_path)]
        if getattr(event, "dest_path", None):
            paths.append(os.fsdecode(event.dest_path))
        folder_changed = event.is_directory and kind in ("moved", "deleted", "created")
        if event.is_directory and not folder_changed:
            return  # a folder's own "modified" events repeat what its files' events say
        self._forward(paths, folder_changed, kind in ("closed", "moved"))
