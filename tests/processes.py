"""Finding processes a test started, through /proc (Linux): for the no-orphans and no-sockets checks."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path


_BORN: dict[str, int] = {}  # marker -> when it was made, in clock ticks since boot (as /proc/PID/stat)


def new_marker() -> str:
    marker = f"skyline-test-{uuid.uuid4().hex}"
    _BORN[marker] = _ticks_since_boot()
    return marker


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of the processes a test left: every live process whose environment carries
    SKYLINE_TEST_MARKER=marker, and every zombie that one of ours never reaped.

    A zombie has no environment left to read (its memory is gone), so it is known by its parent instead:
    a zombie whose parent is a marked process or this test process (which hosts the app in the Pilot tests)
    and that was born after the marker.  A zombie whose parent exited is init's to reap, not ours.  A
    parent reaps its child a moment after it dies: callers poll until this is empty, never sample once.
    """
    needle = f"SKYLINE_TEST_MARKER={marker}".encode()
    born = _BORN.get(marker, 0) - 1  # /proc/uptime has 10 ms steps: one tick of slack
    marked: list[int] = []
    zombies: list[tuple[int, int]] = []  # (pid, parent)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            state, parent, start = fields[0], int(fields[1]), int(fields[19])
            if state == "Z":
                if start >= born:
                    zombies.append((int(entry.name), parent))
            elif needle in (entry / "environ").read_bytes().split(b"\0"):
                marked.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not ours to read
    parents = {os.getpid(), *marked}
    return sorted(marked + [pid for pid, parent in zombies if parent in parents])


def left_behind(marker: str, polls: int = 500) -> list[int]:
    """:func:`processes_with_marker`, polled until it is empty or ``polls`` looks (20 ms apart) found
    something every time: what is still there.  A bound on waiting, never a check on time."""
    for _ in range(polls):
        found = processes_with_marker(marker)
        if not found:
            return []
        time.sleep(0.02)
    return processes_with_marker(marker)


def _ticks_since_boot() -> int:
    seconds = float(Path("/proc/uptime").read_text().split()[0])
    return int(seconds * os.sysconf("SC_CLK_TCK"))


def listening_socket_inodes() -> set[str]:
    """Inodes of every listening TCP/UDP/Unix socket on the machine."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        inodes |= _inodes(Path("/proc/net") / name, state_column=3, listening="0A")
    for name in ("udp", "udp6"):
        inodes |= _inodes(Path("/proc/net") / name, state_column=3, listening="07")
    try:
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            # state 01 with the ACC flag = listening
            if len(fields) >= 7 and fields[5] == "01" and int(fields[3], 16) & 0x10000:
                inodes.add(fields[6])
    except OSError:
        pass
    return inodes


def _inodes(path: Path, state_column: int, listening: str) -> set[str]:
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return set()
    return {fields[9] for fields in (line.split() for line in lines) if fields[state_column] == listening}


def socket_inodes_of(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in (Path("/proc") / str(pid) / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    except OSError:
        pass
    return inodes
