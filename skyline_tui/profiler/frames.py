"""Which Python frames are "project code", and where they point.

Every attribution (a line's run time, a module's call site, saved activations, the frame an exception is
shown at) asks the same question: what is the innermost frame on the stack whose file lies in the project?
This module answers it fast (a per-filename cache, no allocation on the hot path).
"""

from __future__ import annotations

import linecache
import os
from pathlib import Path
from types import FrameType
from typing import Optional

_EXCLUDED_PARTS = frozenset({"site-packages", "dist-packages", ".venv", "venv", ".tox", ".nox", "__pypackages__"})
_OWN_PACKAGE = str(Path(__file__).resolve().parent.parent) + os.sep


class ProjectFiles:
    """Classifies filenames as inside or outside the project root (cached)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self._root_prefix = str(self.root) + os.sep
        self._cache: dict[str, Optional[str]] = {}

    def relpath(self, filename: str) -> Optional[str]:
        """The project-relative POSIX path of ``filename``, or None when it is not project code."""
        try:
            return self._cache[filename]
        except KeyError:
            pass
        rel = self._classify(filename)
        self._cache[filename] = rel
        return rel

    def _classify(self, filename: str) -> Optional[str]:
        if not filename or filename.startswith("<"):
            return None
        path = os.path.realpath(filename)
        if not path.startswith(self._root_prefix) or path.startswith(_OWN_PACKAGE):
            return None
        rel = path[len(self._root_prefix):]
        parts = rel.split(os.sep)
        if _EXCLUDED_PARTS.intersection(parts):
            return None
        return "/".join(parts)

    def innermost(self, frame: Optional[FrameType]) -> Optional[tuple[str, int]]:
        """(relative file, line) of the innermost project frame at or above ``frame``."""
        cache = self._cache
        while frame is not None:
            filename = frame.f_code.co_filename
            rel = cache[filename] if filename in cache else self.relpath(filename)
            if rel is not None:
                return rel, frame.f_lineno
            frame = frame.f_back
        return None

    def source_line(self, rel: str, line: int) -> str:
        return linecache.getline(str(self.root / rel), line).strip()
