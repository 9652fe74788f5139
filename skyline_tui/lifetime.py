"""A forked helper process must not outlive the process that started it, and can be told apart by its name."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
MEASURER_NAME = "skyline-measure"  # a batch size measured in a process of its own (profiler/predictions/processes.py)


def die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent (the thread that forked it) exits.  Elsewhere a
    no-op: the run's process group is killed on cancel and on timeout anyway."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def adopt_orphans() -> None:
    """Linux: the processes orphaned below this one (a killed run's spawner and measurer) become this process's
    children, for it to reap at once, instead of init's, which reaps them when it gets round to it (zombies
    for up to seconds).  Elsewhere a no-op."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def name_this_process(name: str) -> None:
    """Linux: the name ``ps`` shows and ``/proc/PID/comm`` holds (15 bytes at most).  Elsewhere a no-op."""
    _prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]))


def _prctl(option: int, *args: object) -> None:
    """Linux's prctl(2), unused arguments 0; nothing where there is no such call."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, *args, *([0] * (4 - len(args))))
    except (OSError, AttributeError):
        pass
