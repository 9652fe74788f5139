"""Where a run's code came from: the git commit (and whether the work tree differed from it) and a hash
of the project's Python sources, so two runs of the same commit with different edits are told apart."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass

# Folders never part of "the project's code": version control, environments, caches, our own store.
_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", ".skyline-tui", "__pycache__", ".venv", "venv", "env",
                           "node_modules", "site-packages", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                           ".tox", "build", "dist"})
# A root pointed at a huge tree (a script in the home folder, beside a conda install and datasets) must not turn
# every recording into a crawl: walking /usr/lib (11,221 folders, 60,758 files) took 1.1 s here, and a home
# folder holding a dataset has many times that.  Past any of these bounds the walk stops and the run has no
# source hash (unknown, as outside a project), rather than a hash of part of the tree that could call two runs
# "the same source" when a file it never read was edited.
MAX_HASHED_FILES = 5000
MAX_WALKED_FOLDERS = 5000
MAX_WALKED_ENTRIES = 100_000
_GIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Provenance:
    git_commit: str | None  # None: not a git work tree, or git is missing
    git_dirty: bool | None
    source_hash: str | None  # sha256 over (relative path, bytes) of every .py file, sorted by path; None past
    # the walk's bounds


def provenance(project_root: str) -> Provenance:
    if not project_root or not os.path.isdir(project_root):
        return Provenance(None, None, None)
    commit, dirty = git_state(project_root)
    return Provenance(commit, dirty, source_hash(project_root))


def git_state(folder: str) -> tuple[str | None, bool | None]:
    commit = _git(folder, "rev-parse", "--verify", "--quiet", "HEAD")
    if not commit:
        return None, None
    # Only files inside the project root count: another folder of the same repository is not this run's code.
    status = _git(folder, "status", "--porcelain", "--", ".")
    return commit, (None if status is None else bool(status.strip()))


def _git(folder: str, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", folder, *args], check=False, capture_output=True, text=True,
                              timeout=_GIT_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def python_files(root: str) -> list[str] | None:
    """The project's Python files, sorted; None when the tree is past the walk's bounds (see above)."""
    found: list[str] = []
    entries = 0
    for folders, (folder, dirs, files) in enumerate(os.walk(root), 1):
        entries += len(dirs) + len(files)
        if folders > MAX_WALKED_FOLDERS or entries > MAX_WALKED_ENTRIES:
            return None
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith("."))
        found.extend(os.path.join(folder, name) for name in files if name.endswith(".py"))
        if len(found) > MAX_HASHED_FILES:
            return None
    found.sort()
    return found


def source_hash(root: str) -> str | None:
    paths = python_files(root)
    if paths is None:
        return None
    digest = hashlib.sha256()
    for path in paths:
        relative = os.path.relpath(path, root).replace(os.sep, "/")
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            data = b"<unreadable>"
        # Length-prefixed, so ("a", "bc") and ("ab", "c") hash differently.
        for part in (relative.encode("utf-8", "surrogateescape"), data):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()
