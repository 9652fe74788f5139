"""The launcher: starts the script's process, reads its events, passes signals on, returns its exit status.

Never imports torch (import-linter checks it): torch lives in the child.  No port: the events come over a pipe
whose write end only the child holds.  Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT are blocked in the
launcher and received by a thread with ``sigwaitinfo``, which says who sent them.  One the terminal sent
(Ctrl-C) reached the child already, which shares our process group, so it is not sent again (the script's
handler would see two); one a process sent to the launcher (``kill -INT``) is passed on to the child.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

from skyline_tui.dataclass_json import ReportFormatError
from skyline_tui.run import events as ev
from skyline_tui.run.channel import CONFIG_ENV, FORWARDED_SIGNALS

SI_KERNEL = 0x80  # siginfo si_code of a signal the kernel made (the terminal's Ctrl-C), Linux
TICK_S = 0.5


@dataclass(frozen=True)
class Target:
    """What to run: a script path or ``-m MODULE``, and the script's own arguments."""

    script: Optional[str]
    module: Optional[str]
    args: tuple[str, ...] = ()

    def child_argv(self) -> list[str]:
        if self.module is not None:
            return ["-m", self.module, *self.args]
        assert self.script is not None
        return [self.script, *self.args]

    @property
    def shown(self) -> str:
        return f"-m {self.module}" if self.module is not None else str(self.script)


@dataclass(frozen=True)
class RunOptions:
    samples_per_step: Optional[int] = None
    health_every: Optional[int] = None  # sample per-layer health every N steps, else ...
    health_budget: Optional[float] = None  # ... as often as this share of the run's time allows; both None: off
    root: Optional[str] = None
    # A live view: the script's output as ScriptOutput events, not passed through; a line at a time, so a print
    # shows when it is made (a pipe would hold it in 8 KiB blocks); stdin from /dev/null, since the view reads keys.
    capture_output: bool = False


EventSink = Callable[[ev.Event], None]


def launch(target: Target, options: RunOptions, on_event: EventSink,
           on_tick: Optional[Callable[[], None]] = None, python: Optional[str] = None,
           on_started: Optional[Callable[[subprocess.Popen[bytes]], None]] = None) -> int:
    """Run the script to its end; every event goes to ``on_event`` in order, the last one ``ScriptExited``.
    Returns the script's exit status (negative: the signal that ended it)."""
    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    env[CONFIG_ENV] = json.dumps({"fd": write_fd, "samples_per_step": options.samples_per_step,
                                  "health_every": options.health_every, "health_budget": options.health_budget,
                                  "root": options.root, "whole_lines": options.capture_output})
    command = [python or sys.executable, "-m", "skyline_tui.run.child", *target.child_argv()]
    output = subprocess.PIPE if options.capture_output else None
    stdin = subprocess.DEVNULL if options.capture_output else None
    if options.capture_output:
        env.setdefault("PYTHONUNBUFFERED", "1")  # the script's own subprocesses' output comes as it is written
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    try:
        try:
            child = subprocess.Popen(command, pass_fds=(write_fd,), env=env, stdin=stdin, stdout=output,
                                     stderr=output)
        finally:
            os.close(write_fd)
        if on_started is not None:
            on_started(child)
        forwarder = SignalForwarder(child)
        forwarder.start()
        readers = [_OutputReader(stream, name, on_event)
                   for stream, name in ((child.stdout, "stdout"), (child.stderr, "stderr")) if stream is not None]
        try:
            _read_events(read_fd, child, on_event, on_tick)
            returncode = child.wait()
            for reader in readers:
                reader.join()
        finally:
            forwarder.stop()
    finally:
        os.close(read_fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    on_event(ev.ScriptExited(exit_code=returncode, message=exit_message(returncode)))
    return returncode


def exit_message(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the script was ended by {name}"
    return f"the script exited with status {returncode}"


def _read_events(fd: int, child: subprocess.Popen[bytes], on_event: EventSink,
                 on_tick: Optional[Callable[[], None]]) -> None:
    """Until the child has exited and the pipe is drained.  Not until EOF alone: a forked DataLoader worker
    holds a copy of the write end and may outlive the child for a while."""
    buffer = bytearray()
    os.set_blocking(fd, False)
    exited = False
    while True:
        ready, _, _ = select.select([fd], [], [], 0.0 if exited else TICK_S)
        if ready:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                return
            if chunk:
                buffer += chunk
                *lines, rest = buffer.split(b"\n")
                buffer = bytearray(rest)
                for line in lines:
                    _deliver(line, on_event)
                continue
        if exited:
            return
        if on_tick is not None:
            on_tick()
        exited = child.poll() is not None


def _deliver(line: Union[bytes, bytearray], on_event: EventSink) -> None:
    if not line.strip():
        return
    try:
        events = ev.decode_all(line)
    except ReportFormatError as exc:  # a line cut by a signal: one event lost, not the run
        print(f"skyline-tui: warning: an event from the run could not be read ({exc})", file=sys.stderr)
        return
    for event in events:
        on_event(event)


class SignalForwarder(threading.Thread):
    """Receives the blocked signals and passes on those a process sent (see the module's docstring)."""

    def __init__(self, child: subprocess.Popen[bytes]):
        super().__init__(name="skyline-tui-signals", daemon=True)
        self._child = child
        self._done = threading.Event()
        self.forwarded: list[int] = []

    def run(self) -> None:
        while True:
            info = signal.sigwaitinfo(FORWARDED_SIGNALS)
            if info.si_code == SI_KERNEL:
                continue
            if info.si_pid == os.getpid() and self._done.is_set():
                return  # stop()'s wake-up
            if self._child.poll() is None:
                self.forwarded.append(info.si_signo)
                self._child.send_signal(info.si_signo)

    def stop(self) -> None:
        """Wake the thread with a signal sent to it alone, which it takes for the end (it had polled with a 0.2 s
        time-out, which every run's exit waited out).  It returns only on that signal, so it is still alive when
        the signal is sent."""
        self._done.set()
        if self.is_alive() and self.ident is not None:
            signal.pthread_kill(self.ident, signal.SIGINT)
        self.join()


class _OutputReader(threading.Thread):
    def __init__(self, stream: object, name: str, on_event: EventSink):
        super().__init__(name=f"skyline-tui-{name}", daemon=True)
        self._stream = stream
        self._name = name
        self._on_event = on_event
        self.start()

    def run(self) -> None:
        """Whole lines, one event each (a script writing unbuffered sends ``hello`` and ``\\n`` apart); what is left
        without a newline at the end comes last."""
        fd = self._stream.fileno()  # type: ignore[attr-defined]
        pending = b""
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                self._on_event(ev.ScriptOutput(stream=self._name, text=line.decode("utf-8", "replace") + "\n"))
        if pending:
            self._on_event(ev.ScriptOutput(stream=self._name, text=pending.decode("utf-8", "replace")))


def distributed_launcher(target: Target, environ: Optional[dict[str, str]] = None,
                         argv: Sequence[str] = ()) -> Optional[str]:
    """Why this run must be refused (several processes), or None."""
    environ = dict(os.environ) if environ is None else environ
    name = os.path.basename(target.script or "")
    if name in ("torchrun", "torchrun.py") or target.module in ("torch.distributed.run", "torch.distributed.launch"):
        return ("skyline-tui run supervises one process; torchrun and torch.distributed launchers start several, "
                "which is not supported: run the training script itself (one process)")
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
    except ValueError:
        world = 1
    if world > 1:
        return (f"skyline-tui run supervises one process, and WORLD_SIZE={world} says this is one of several "
                "(torchrun?): multi-process distributed runs are not supported")
    return None

