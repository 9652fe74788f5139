"""Where a project starts: the folder that is watched and whose lines count as "project code".

Torch-free and textual-free, so the profiler child (line attribution) and the app (watching, source paths)
resolve the same root from the same arguments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from skyline_tui.report import ErrorInfo

# A folder holding one of these is a project's top (Skyline took the folder it was launched from; a script in
# ``scripts/`` beside ``models/`` would otherwise charge every model line to "other").
PROJECT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg")


def find_project_root(entry: str | os.PathLike[str], home: Optional[Path] = None) -> Path:
    """The nearest folder at or above the entry's that holds a project marker, never above the home
    directory (where the user's projects start); else the entry's folder.  ``home`` is for tests."""
    folder = Path(entry).expanduser().resolve().parent
    home = (home if home is not None else Path.home()).resolve()
    # Only folders inside the home directory are searched up to it; elsewhere (/srv, /tmp) up to /.
    stop = home if folder == home or home in folder.parents else None
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in PROJECT_MARKERS):
            return candidate
        if candidate == stop:
            break
    return folder


def project_root(entry: str | os.PathLike[str], root: str | os.PathLike[str] | None) -> Path:
    """The project root for ``entry``: ``root`` when given (absolute), else ``find_project_root``."""
    if root is not None:
        return Path(root).expanduser().resolve()
    return find_project_root(entry)


def entry_problem(entry: str | os.PathLike[str], root: str | os.PathLike[str] | None) -> Optional[ErrorInfo]:
    """Why ``entry`` cannot be profiled before anything runs (no file there, a folder, a root that is not a
    folder), or None.  Torch-free, so each front door (the app, ``--json``, the API, a sweep) refuses a
    missing entry without starting a worker, in the words the profiler itself uses."""
    path = Path(entry).expanduser()
    if not path.exists():
        return ErrorInfo(kind="file", message=f"entry point not found: {entry}", file=str(entry))
    if path.is_dir():
        return ErrorInfo(kind="file", message=f"entry point is a directory, not a Python file: {entry}",
                         file=str(entry))
    if not project_root(path.resolve(), root).is_dir():
        return ErrorInfo(kind="file", message=f"project root is not a directory: {root}")
    return None


def display_path(path: str | os.PathLike[str], root: Path) -> str:
    """How reports and panes name a file: relative to the project root (with ``/``), else absolute."""
    absolute = Path(path).expanduser().resolve()
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return str(absolute)
