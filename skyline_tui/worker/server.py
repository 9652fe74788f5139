"""The worker process: imports torch once, then forks a fresh child for every profile request.

    parent (CLI or UI) ──requests──▶ worker (this module, a warm "zygote") ──fork──▶ run child
                       ◀──events────                                      ◀─pipes─ (messages, stdout, stderr)

Why a zygote: importing torch costs seconds; forking a pre-imported process costs milliseconds, and each
child starts from a clean interpreter state, so the user's edited modules are always loaded fresh.  The
worker never initialises CUDA itself, so every child may (forking after CUDA init would break it): see
fork_safety.py.

The worker relays only complete messages from a child, so a child killed mid-write (timeout, cancel,
segfault, ``os._exit``) cannot corrupt the channel; its death becomes an error report instead, pointing at
the user's line where faulthandler saw it (stacks.py).  User output past a limit keeps its newest lines
(output.py), and what was printed before a report is relayed before it.
The worker's lifetime is tied to the parent by the request pipe: EOF there means the parent is gone
(whatever killed it), and the worker kills its child's process group and exits.
A run is a process group (run child, the spawner and measurer of batch_processes.py, what the user's code
forks): killed, its orphans come to the worker (a child subreaper), which reaps the whole group before the
run's end is reported, so a storm of cancelled saves leaves no zombie waiting for init.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import signal
import struct
import sys
import termios
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from skyline_tui.lifetime import adopt_orphans
from skyline_tui.worker import protocol as p
from skyline_tui.worker import stacks
from skyline_tui.worker.child import child_main, preload
from skyline_tui.worker.fork_safety import cuda_fork_problem
from skyline_tui.worker.output import RunOutput

if TYPE_CHECKING:
    from skyline_tui.profiler.frames import ProjectFiles

POLL_S = 0.05
READ_BYTES = 65536
ABORT_GRACE_S = 2.0  # a timed-out run gets this long to write its stack after SIGABRT, then SIGKILL


@dataclass
class Run:
    request: p.ProfileRequest
    pid: int
    deadline: float
    messages: int  # fd: child's message pipe
    streams: dict[int, str]  # fd -> "stdout" | "stderr"
    stack: int  # fd: faulthandler's dumps (see stacks.py)
    output: RunOutput
    stack_dump: bytearray = field(default_factory=bytearray)
    buffer: p.LineBuffer = field(default_factory=p.LineBuffer)
    last_report: Optional[p.RunReport] = None
    phase: str = "load"
    finished: bool = False  # a final report was relayed
    # The timeout struck and the run is being aborted: a final report it sends now is the abort's doing (the
    # run child saw its batch-size measurer die of SIGABRT, a "crash"), not the run's answer, and is not relayed.
    aborting: bool = False


class Worker:
    def __init__(self, requests_fd: int, events_fd: int):
        self.requests_fd = requests_fd
        self.events_fd = events_fd
        self.requests = p.LineBuffer()
        self.selector = selectors.DefaultSelector()
        self.selector.register(requests_fd, selectors.EVENT_READ, "requests")
        self.run: Optional[Run] = None

    # ---- sending ---------------------------------------------------------------------------------
    def send(self, message: object) -> None:
        data = p.encode(message)
        view = memoryview(data)
        while view:
            written = os.write(self.events_fd, view)
            view = view[written:]

    # ---- main loop -------------------------------------------------------------------------------
    def serve(self) -> None:
        import torch

        adopt_orphans()
        preload()
        self.send(p.WorkerReady(pid=os.getpid(), torch_version=torch.__version__))
        while True:
            for key, _ in self.selector.select(timeout=POLL_S):
                if key.data == "requests":
                    if not self._read_requests():
                        self._stop_run("cancelled", "the profiler is shutting down")
                        return
                else:
                    self._read_child(key.fd)
            self._check_child()
            _reap_strays(self.run.pid if self.run is not None else None)

    def _read_requests(self) -> bool:
        data = os.read(self.requests_fd, 65536)
        if not data:
            return False  # the parent is gone
        for line in self.requests.feed(data):
            request = p.decode(line)
            if isinstance(request, p.ShutdownRequest):
                return False
            if isinstance(request, p.CancelRequest):
                if self.run and self.run.request.run_id == request.run_id:
                    self._stop_run("cancelled", "cancelled: a newer profile was requested")
            elif isinstance(request, p.ProfileRequest):
                if self.run:
                    self._stop_run("cancelled", "cancelled: a newer profile was requested")
                self._start_run(request)
        return True

    # ---- a run -----------------------------------------------------------------------------------
    def _start_run(self, request: p.ProfileRequest) -> None:
        problem = cuda_fork_problem()
        if problem is not None:
            self._refuse(request, problem)
            return
        msg_r, msg_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stack_r, stack_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the run child: never returns
            for fd in (msg_r, out_r, err_r, stack_r):
                os.close(fd)
            child_main(request, msg_w, out_w, err_w, stack_w, close=(self.requests_fd, self.events_fd))
        for fd in (msg_w, out_w, err_w, stack_w):
            os.close(fd)
        streams = {out_r: "stdout", err_r: "stderr"}
        run = Run(request=request, pid=pid, deadline=time.monotonic() + request.config.timeout_s,
                  messages=msg_r, streams=streams, stack=stack_r, output=RunOutput(streams))
        for fd in (msg_r, out_r, err_r, stack_r):
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, "child")
        self.run = run
        self.send(p.RunStarted(run_id=request.run_id))

    def _refuse(self, request: p.ProfileRequest, message: str) -> None:
        from skyline_tui.report import ErrorInfo, Report

        error = ErrorInfo(kind="internal", message=message)
        self.send(p.RunStarted(run_id=request.run_id))
        self.send(p.RunReport(run_id=request.run_id, phase="error", final=True, report=Report(
            entry_point=request.entry, project_root=request.root or "", error=error)))

    def _read_child(self, fd: int) -> None:
        if self.run is not None and self._read_chunk(self.run, fd) is None:  # its end: stop watching it
            try:
                self.selector.unregister(fd)
            except (KeyError, ValueError):
                pass

    def _read_chunk(self, run: Run, fd: int, limit: int = READ_BYTES) -> Optional[int]:
        """Relay what one read of a child's pipe gives: the bytes read; 0 when nothing is to be had now (a report
        earlier in the same select round drained it: the stream goes on); ``None`` at its end."""
        try:
            data = os.read(fd, min(limit, READ_BYTES))
        except BlockingIOError:
            return 0
        except OSError:
            return None
        if not data:
            return None
        if fd == run.messages:
            for line in run.buffer.feed(data):
                self._relay(run, line)
        elif fd == run.stack:
            run.stack_dump += data
            del run.stack_dump[:-stacks.STACK_LIMIT_BYTES]
        else:
            self._relay_log(run, fd, data)
        return len(data)

    def _relay(self, run: Run, line: bytes) -> None:
        try:
            message = p.decode(line)
        except p.ProtocolError as exc:  # never let a bad line take the worker down
            self.send(p.RunLog(run_id=run.request.run_id, stream="stderr", text=f"[skyline-tui] {exc}\n"))
            return
        if isinstance(message, p.RunProgress):
            run.phase = message.phase
        if isinstance(message, p.RunReport):
            if message.final and run.aborting:
                return
            run.last_report = message
            run.finished = run.finished or message.final
            self._drain(run, tuple(run.streams))  # what the code printed before a report arrives before it
            self._send_logs(run, run.output.flush())
        self.send(message)

    def _relay_log(self, run: Run, fd: int, data: bytes) -> None:
        self._send_logs(run, run.output.feed(fd, data))

    def _send_logs(self, run: Run, chunks: list[tuple[str, str]]) -> None:
        for stream, text in chunks:
            self.send(p.RunLog(run_id=run.request.run_id, stream=stream, text=text))

    def _drain(self, run: Run, fds: Optional[tuple[int, ...]] = None) -> None:
        """Relay what the pipes hold now.  Bounded by what was there on entry: a child that keeps
        printing must not hold the loop (and the timeout check) in here."""
        for fd in fds or (run.messages, *run.streams, run.stack):
            budget = _pending_bytes(fd)
            while budget > 0:
                read = self._read_chunk(run, fd, budget)
                if not read:
                    break
                budget -= read

    def _close(self, run: Run) -> None:
        for fd in (run.messages, *run.streams, run.stack):
            try:
                self.selector.unregister(fd)
            except (KeyError, ValueError):
                pass
            os.close(fd)
        self._send_logs(run, run.output.flush())
        self.run = None

    def _check_child(self) -> None:
        run = self.run
        if run is None:
            return
        pid, status = os.waitpid(run.pid, os.WNOHANG)
        if pid == 0:
            if time.monotonic() > run.deadline:
                self._stop_run("timeout", f"the run took longer than {run.request.config.timeout_s:g} s and was "
                               "stopped")
            return
        _kill_group(run.pid)  # leftovers such as DataLoader workers
        _reap_group(run.pid)
        self._drain(run)
        if not run.finished:
            kind, message = _describe_exit(status)
            self._send_failure(run, kind, message)
        self._close(run)

    def _stop_run(self, kind: str, message: str) -> None:
        run = self.run
        if run is None:
            return
        if kind == "timeout":
            self._drain(run)  # what the run sent before the deadline counts, its final report too
            run.aborting = not run.finished
            if run.aborting:
                _abort(run.pid)  # faulthandler writes where the user's code was stuck
        _kill_group(run.pid)
        try:
            os.waitpid(run.pid, 0)
        except ChildProcessError:
            pass
        _reap_group(run.pid)
        self._drain(run)
        if not run.finished:
            self._send_failure(run, kind, message)
        self._close(run)

    def _send_failure(self, run: Run, kind: str, message: str) -> None:
        from skyline_tui.presentation import timeout_hint
        from skyline_tui.report import ErrorInfo, Report

        # Its output goes before its final report (past the output limit, the newest lines are still held here).
        self._send_logs(run, run.output.flush())
        base = run.last_report.report if run.last_report else Report(
            entry_point=run.request.entry, project_root=run.request.root or "")
        where = None
        if kind in ("crash", "exit", "timeout"):
            where = stacks.locate(bytes(run.stack_dump), _project_files(run.request))
            if where is not None and where.exit_code is not None and kind == "exit":
                message = f"your code called os._exit({where.exit_code}) before the profile finished"
            during = "while loading the entry point" if run.phase == "load" else f"while measuring {run.phase}"
            message = f"{message} {during}; {timeout_hint(base, run.phase)}" if kind == "timeout" \
                else f"{message} ({during})"
        error = ErrorInfo(kind=kind, message=message)
        if where is not None:
            error = ErrorInfo(kind=kind, message=message, file=where.file, line=where.line, function=where.function,
                              traceback=f"Where your code was (project frames only):\n{where.traceback.rstrip()}")
        report = base.replace(error=error)
        self.send(p.RunReport(run_id=run.request.run_id, report=report, phase="error", final=True))
        run.finished = True


def _pending_bytes(fd: int) -> int:
    """Bytes waiting in a pipe (Linux FIONREAD); a closed or unreadable pipe counts as empty."""
    try:
        pending: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        return pending
    except OSError:
        return 0


def _describe_exit(status: int) -> tuple[str, str]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = " (a segmentation fault in native code)" if sig == signal.SIGSEGV else ""
        if sig == signal.SIGKILL:
            hint = " (killed from outside, or by the out-of-memory killer)"
        return "crash", f"the process running your code died from signal {name}{hint}"
    code = os.WEXITSTATUS(status)
    return "exit", f"your code ended the process with exit status {code} (os._exit?) before the profile finished"


def _project_files(request: p.ProfileRequest) -> ProjectFiles:
    from skyline_tui.profiler.frames import ProjectFiles

    return ProjectFiles(request.root or os.path.dirname(os.path.abspath(request.entry)))


def _abort(pid: int) -> None:
    """SIGABRT: faulthandler dumps the Python stack and the process dies; SIGKILL follows if it lingers.  A batch
    size being measured in a process of its own goes first: the user's code runs there, and the run's own
    stack (it only waits) then follows that one in the pipe instead of interleaving with it."""
    for measurer in stacks.measurers(pid):
        _abort_one(measurer, ours=False)
    _abort_one(pid, ours=True)


def _abort_one(pid: int, ours: bool) -> None:
    """SIGABRT to ``pid``, then wait until it is gone (``ours``: our child, reaped here), at most the grace."""
    try:
        os.kill(pid, signal.SIGABRT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + ABORT_GRACE_S
    while time.monotonic() < deadline:
        if ours:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return  # reaped here; _stop_run's waitpid finds nothing left to wait for
        elif not stacks.running(pid):
            return  # its parent (the spawner) reaps it
        time.sleep(0.01)


def _reap_group(group: int) -> None:
    """Wait for every process left of a killed run's group.  Each is ours by now: a process's children are
    handed to the subreaper before it can be reaped itself, so none is missed while its parent is dying."""
    while True:
        try:
            os.waitpid(-group, 0)
        except ChildProcessError:
            return


def _reap_strays(run_pid: Optional[int]) -> None:
    """Reap orphans that ended outside a run's group (the user's code moved them to a group of their own).  Never
    the run child: its status is _check_child's to read."""
    while True:
        try:
            ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if ended is None or ended.si_pid == run_pid:
            return
        try:
            os.waitpid(ended.si_pid, 0)
        except ChildProcessError:
            return


def _kill_group(pid: int) -> None:
    targets: tuple[Callable[[], None], ...] = (lambda: os.killpg(pid, signal.SIGKILL),
                                               lambda: os.kill(pid, signal.SIGKILL))
    for target in targets:
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m skyline_tui.worker REQUESTS_FD EVENTS_FD", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the worker stops
    # As in any Python process: a write to a parent that is gone raises BrokenPipeError, and the run's whole
    # group is killed below (SIGPIPE's default killed the worker outright, and the run child's own children
    # outlived it); the run child and the user's code inherit it, as their plain Python would have it.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    worker = Worker(int(argv[0]), int(argv[1]))
    try:
        worker.serve()
    except BrokenPipeError:
        pass
    finally:
        if worker.run is not None:
            _kill_group(worker.run.pid)
    return 0
