"""No orphans: the real app (`python -m skyline_tui ENTRY` on a pseudo-terminal) mid-profile, then
SIGTERM, SIGHUP, SIGKILL or the terminal hanging up (an SSH drop); every process it started must go."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

from ..conftest import TINY_ENTRY, cli_env
from ..processes import new_marker, processes_with_marker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the worker needs torch"),
]

# Every iteration sleeps: the run child is still measuring when the signal comes.
SLOW_ENTRY = TINY_ENTRY.replace("import torch\n", "import time\nimport torch\n", 1).replace(
    "optimizer.step()", "optimizer.step()\n        time.sleep(30)")
STARTUP_TIMEOUT = 90.0
EXIT_TIMEOUT = 20.0


def _take_the_terminal() -> None:
    """In the child, after setsid: make the pty its controlling terminal, so a hang-up signals it."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class AppOnTerminal:
    """The app in a subprocess whose terminal is a pty we keep draining (a full pty would block it)."""

    def __init__(self, entry, marker: str) -> None:
        self.marker = marker
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        env = {**cli_env(), "SKYLINE_TEST_MARKER": marker, "TERM": "xterm-256color"}
        self.proc = subprocess.Popen([sys.executable, "-m", "skyline_tui", str(entry)], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, start_new_session=True, close_fds=True,
                                     preexec_fn=_take_the_terminal)
        os.close(slave)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if ready:
                    data = os.read(self.master, 65536)
                    if not data:
                        return
                    self.output.extend(data)
            except (OSError, ValueError):
                return  # EIO once the app is gone, or the master closed (a hang-up)

    def hang_up(self) -> None:
        os.close(self.master)  # the kernel sends SIGHUP to the session's processes

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        try:
            os.close(self.master)
        except OSError:
            pass


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGKILL", "hang-up"])
def test_the_app_leaves_no_process_behind(how, write_entry):
    entry = write_entry(SLOW_ENTRY)
    marker = new_marker()
    app = AppOnTerminal(entry, marker)
    try:
        # The app, its worker and the run child measuring the slow iteration.
        wait_for(lambda: len(processes_with_marker(marker)) >= 3, STARTUP_TIMEOUT,
                 f"the app never got to profiling: {app.output[-2000:]!r}")
        if how == "hang-up":
            app.hang_up()
        else:
            os.kill(app.proc.pid, getattr(signal, how))
        wait_for(lambda: app.proc.poll() is not None, EXIT_TIMEOUT, "the app did not exit")
        wait_for(lambda: processes_with_marker(marker) == [], EXIT_TIMEOUT,
                 f"processes left behind: {processes_with_marker(marker)}")
        if how in ("SIGTERM", "SIGHUP"):
            # A clean exit, not death by the signal: the status says which signal, as a shell would.
            assert app.proc.returncode == 128 + getattr(signal, how)
            assert b"\x1b[?1049l" in app.output  # the alternate screen was left: the terminal is restored
    finally:
        app.close()
