"""Finding processes a test started, through /proc (Linux): for the no-orphans and no-sockets checks."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def new_marker() -> str:
    return f"skyline-test-{uuid.uuid4().hex}"


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose environment carries SKYLINE_TEST_MARKER=marker."""
    needle = f"SKYLINE_TEST_MARKER={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                found.append((int(entry.name), state))
        except OSError:
            continue
    return [pid for pid, state in found if state != "Z"]


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
            if len(fields) >= 7 and fields[5] == "01":  # state 01 with the ACC flag = listening
                if int(fields[3], 16) & 0x10000:
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
