"""Where a project starts: the folder that is watched and whose lines count as "project code".

Torch-free and textual-free, so the profiler child (line attribution) and the app (watching, source paths)
resolve the same root from the same arguments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

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


def display_path(path: str | os.PathLike[str], root: Path) -> str:
    """How reports and panes name a file: relative to the project root (with ``/``), else absolute."""
    absolute = Path(path).expanduser().resolve()
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return str(absolute)
