"""Where the user's code was when its process died without a Python exception.

A hang stopped by the timeout, a segfault in native code and ``os._exit`` leave no traceback behind.  The
run child arms :mod:`faulthandler` on a private pipe: a fatal signal (SIGSEGV, SIGABRT, ...) writes the
Python stack there before the process dies, the worker sends SIGABRT to a run that timed out, and
``os._exit`` is wrapped to write the stack first.  The worker reads the pipe and points the error at the
innermost project frame.  (SIGKILL cannot be caught: a killed run stays without a location.)
"""

from __future__ import annotations

import faulthandler
import linecache
import os
import re
from dataclasses import dataclass
from typing import NoReturn, Optional

from skyline_tui.lifetime import MEASURER_NAME
from skyline_tui.profiler.frames import ProjectFiles

REAL_EXIT = os._exit  # the run child's own exit must not be reported as the user's
STACK_LIMIT_BYTES = 256 * 1024  # the newest bytes are kept; a dump is a few kilobytes
_FRAME = re.compile(r'^\s*File "(?P<file>.+)", line (?P<line>\d+) in (?P<function>.+)$')
_EXIT_CALL = re.compile(r"^os\._exit\((?P<code>-?\d+)\) called$")
_HEADERS = ("Stack (", "Current thread ", "Thread 0x")


@dataclass(frozen=True)
class Location:
    file: str  # relative to the project root
    line: int
    function: str
    traceback: str  # the project frames, outermost first, as Python prints a traceback
    exit_code: Optional[int] = None  # set when the dump came from os._exit


def arm(fd: int) -> None:
    """In the run child: dump the stack to ``fd`` on a fatal signal or when user code calls os._exit."""
    faulthandler.enable(file=fd, all_threads=False)
    child = os.getpid()

    def _exit(status: int) -> NoReturn:  # os._exit's own signature: a caller may name the argument
        if os.getpid() == child:  # not a process the user's code forked (DataLoader workers exit this way)
            try:
                os.write(fd, f"os._exit({int(status)}) called\n".encode())
                faulthandler.dump_traceback(file=fd, all_threads=False)
            except (OSError, ValueError, TypeError):
                pass
        REAL_EXIT(status)

    os._exit = _exit


def locate(dump: bytes, files: ProjectFiles) -> Optional[Location]:
    """The innermost project frame of the last stack in ``dump`` (faulthandler's text) that has one, if any.
    (After a timeout during the predictions the last stack is the run's, waiting for the process that measured
    a batch size; that process's, just before it, is where the user's code was.)"""
    dumps: list[tuple[Optional[int], list[tuple[str, int, str]]]] = []  # (exit code, frames most recent first)
    pending_exit: Optional[int] = None
    for line in dump.decode("utf-8", "replace").splitlines():
        exit_call = _EXIT_CALL.match(line)
        if exit_call is not None:
            pending_exit = int(exit_call["code"])
        elif line.startswith(_HEADERS):  # a new dump begins
            dumps.append((pending_exit, []))
            pending_exit = None
        elif dumps and (match := _FRAME.match(line)) is not None:
            rel = files.relpath(match["file"])
            if rel is not None:
                dumps[-1][1].append((rel, int(match["line"]), match["function"].strip()))
    exit_code, frames = next(((code, found) for code, found in reversed(dumps) if found), (None, []))
    if not frames:
        return None
    lines = []
    for rel, number, function in reversed(frames):
        lines.append(f'  File "{rel}", line {number}, in {function}\n')
        source = linecache.getline(str(files.root / rel), number).strip()
        if source:
            lines.append(f"    {source}\n")
    file, number, function = frames[0]
    return Location(file, number, function, "".join(lines), exit_code)


def measurers(group: int) -> list[int]:
    """The processes of the run's process group ``group`` that measure a batch size (named by predictions/processes.py),
    the outermost only (what the user's code forks there carries the name too).  Empty without ``/proc``."""
    processes: dict[int, tuple[str, int, int]] = {}  # pid: (name, parent, group)
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            processes[int(entry)] = stat[0], stat[2], stat[3]
    return [pid for pid, (name, parent, pgrp) in processes.items()
            if pgrp == group and name == MEASURER_NAME and processes.get(parent, ("",))[0] != MEASURER_NAME]


def running(pid: int) -> bool:
    """Whether ``pid`` exists and has not exited (a zombie has)."""
    stat = _stat(pid)
    return stat is not None and stat[1] != "Z"


def _stat(pid: int) -> Optional[tuple[str, str, int, int]]:
    """Name, state, parent and process group from ``/proc/PID/stat``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("utf-8", "replace")
    except OSError:
        return None
    name = text[text.index("(") + 1:text.rindex(")")]  # the name may hold spaces and parentheses
    state, parent, group = text[text.rindex(")") + 2:].split()[:3]
    return name, state, int(parent), int(group)
