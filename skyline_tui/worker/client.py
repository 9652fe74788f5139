"""The parent's side of the worker: start it, send requests, and deliver its events on a reader thread.

Used by the CLI (one run, then close) and by the app (a warm worker serving every re-profile).  This
module never imports torch: the UI process stays light and a crash in user code cannot take it down.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

from skyline_tui.config import ProfileConfig
from skyline_tui.report import ErrorInfo, Report
from skyline_tui.worker import protocol as p

EventHandler = Callable[[p.Event], None]
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)


class WorkerClient:
    """A warm profiling worker.  ``on_event`` is called on a background thread for every event.

    Every run ends with exactly one ``RunReport`` whose ``final`` is true, even when the worker dies
    (then its error is a "crash").  Submitting while a run is going cancels that run.
    """

    def __init__(self, on_event: EventHandler, *, python: str = sys.executable,
                 env: Optional[dict[str, str]] = None):
        self._on_event = on_event
        self._python = python
        self._extra_env = dict(env or {})  # e.g. CUDA_VISIBLE_DEVICES: a sweep gives each GPU its worker
        self._lock = threading.Lock()
        # Held while the request pipe is written or closed, so a message never goes to a descriptor that
        # shutdown() closed (and the system may have reused).  Taken after _lock where both are held.
        self._send_lock = threading.Lock()
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._requests_fd: Optional[int] = None
        self._reader: Optional[threading.Thread] = None
        self._next_run_id = 1
        self._active: dict[int, p.ProfileRequest] = {}  # runs without a final report yet
        self._run_proc: dict[int, subprocess.Popen[bytes]] = {}  # the worker each active run was sent to
        self._last_partial: dict[int, Report] = {}
        self._closing = False

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        with self._lock:
            if self.alive:
                return
            self._closing = False
            with self._send_lock:
                if self._requests_fd is not None:  # the previous worker died: its request pipe goes too
                    os.close(self._requests_fd)
                    self._requests_fd = None
            requests_r, requests_w = os.pipe()
            events_r, events_w = os.pipe()
            env = {**os.environ, **self._extra_env}
            # The worker must import *this* skyline_tui, wherever the parent found it.
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
            env.setdefault("PYTHONUNBUFFERED", "1")
            env.update(p.WORKER_ENVIRONMENT)  # the worker must never initialise CUDA (fork_safety.py)
            try:
                self._proc = subprocess.Popen(
                    [self._python, "-m", "skyline_tui.worker", str(requests_r), str(events_w)],
                    pass_fds=(requests_r, events_w), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, env=env, start_new_session=True, close_fds=True,
                )
            finally:
                os.close(requests_r)
                os.close(events_w)
            with self._send_lock:
                self._requests_fd = requests_w
            proc = self._proc
            self._reader = threading.Thread(target=self._read_events, args=(events_r, proc), daemon=True,
                                            name="skyline-worker-events")
            self._reader.start()
            threading.Thread(target=self._read_own_output, args=(proc,), daemon=True,
                             name="skyline-worker-output").start()

    def submit(self, entry: str, root: Optional[str], config: ProfileConfig) -> int:
        """Start profiling ``entry``; any run in progress is cancelled.  Returns the new run's id."""
        if not self.alive:
            self.start()
        with self._lock:
            run_id = self._next_run_id
            self._next_run_id += 1
            # Absolute paths: the run child works in the project's folder, not in ours.
            request = p.ProfileRequest(run_id=run_id, entry=os.path.abspath(entry),
                                       root=os.path.abspath(root) if root else None, config=config)
            self._active[run_id] = request
            if self._proc is not None:
                self._run_proc[run_id] = self._proc
        try:
            self._send(request)
        except OSError as exc:  # the worker died (or was shut down) between the check above and the write
            if self._closing:
                self._end_run(run_id, "cancelled", "the profiler worker stopped")
            else:
                self._end_run(run_id, "crash", f"the profiler worker could not take the run ({exc.strerror or exc})")
        return run_id

    def cancel(self, run_id: Optional[int] = None) -> None:
        with self._lock:
            targets = [run_id] if run_id is not None else list(self._active)
        for target in targets:
            try:
                self._send(p.CancelRequest(run_id=target))
            except OSError:
                pass  # the worker is gone: its runs end with their crash reports (_worker_gone)

    def shutdown(self) -> None:
        """Ask the worker to stop, without waiting for it: several workers then stop side by side, and
        :meth:`close` only waits for what is left.  Safe to call twice."""
        with self._lock:
            self._closing = True
        with self._send_lock:
            fd = self._requests_fd
            self._requests_fd = None
            if fd is not None:
                try:
                    os.write(fd, p.encode(p.ShutdownRequest()))
                except OSError:
                    pass
                os.close(fd)  # EOF alone is enough for the worker to stop

    def close(self, timeout: float = 3.0) -> None:
        """Stop the worker and every process it started, and wait for them.  Safe to call twice."""
        self.shutdown()
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=timeout)

    # ---- internals -------------------------------------------------------------------------------
    def _send(self, message: object) -> None:
        """Write one message whole; ``OSError`` (``BrokenPipeError``) when no worker can read it."""
        data = memoryview(p.encode(message))
        with self._send_lock:
            fd = self._requests_fd
            if fd is None:
                raise BrokenPipeError(errno.EPIPE, "the worker is not running")
            while data:
                data = data[os.write(fd, data):]

    def _end_run(self, run_id: int, kind: str, message: str) -> None:
        """End a run that has no final report yet with one carrying ``kind``/``message`` (its last partial
        report kept); a no-op once it has one, so a run never gets two, whoever gets here first."""
        with self._lock:
            request = self._active.pop(run_id, None)
            self._run_proc.pop(run_id, None)
            partial = self._last_partial.pop(run_id, None)
        if request is None:
            return
        base = partial or Report(entry_point=request.entry, project_root=request.root or "")
        report = base.replace(error=ErrorInfo(kind=kind, message=message))
        self._on_event(p.RunReport(run_id=run_id, report=report, phase="error", final=True))

    def _emit(self, event: p.Event) -> None:
        if isinstance(event, p.RunReport):
            with self._lock:
                if event.final:
                    self._active.pop(event.run_id, None)
                    self._run_proc.pop(event.run_id, None)
                    self._last_partial.pop(event.run_id, None)
                else:
                    self._last_partial[event.run_id] = event.report
        self._on_event(event)

    def _read_events(self, fd: int, proc: subprocess.Popen[bytes]) -> None:
        buffer = p.LineBuffer()
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                for line in buffer.feed(data):
                    try:
                        event = p.decode(line)
                    except (p.ProtocolError, ValueError) as exc:
                        self._on_event(p.RunLog(run_id=None, stream="stderr", text=f"[skyline-tui] {exc}\n"))
                        continue
                    self._emit(event)
        finally:
            os.close(fd)
            returncode = proc.wait()
            self._worker_gone(returncode, proc)

    def _worker_gone(self, returncode: int, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            orphans = [rid for rid in self._active if self._run_proc.get(rid) in (proc, None)]
            closing = self._closing
            replaced = proc is not self._proc  # a newer worker already serves: it is not gone
        message = "the profiler worker stopped" if closing else \
            f"the profiler worker died unexpectedly ({_describe_status(returncode)})"
        for run_id in orphans:
            self._end_run(run_id, "cancelled" if closing else "crash", message)
        if not replaced:
            self._on_event(p.WorkerGone(returncode=returncode,
                                        message="worker stopped" if closing else _describe_status(returncode)))

    def _read_own_output(self, proc: subprocess.Popen[bytes]) -> None:
        """The worker's own stdout/stderr (not the user's): shown as log lines, never on our terminal."""
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            self._on_event(p.RunLog(run_id=None, stream="stderr", text=raw.decode("utf-8", "replace")))
        proc.stdout.close()


def _describe_status(returncode: int) -> str:
    """Popen's returncode in words: 'SIGKILL' for -9, 'exit status 3' for 3."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def profile_once(entry: str, root: Optional[str], config: ProfileConfig,
                 on_event: Optional[EventHandler] = None, grace_s: float = 60.0,
                 on_final: Optional[Callable[[Report], None]] = None) -> Report:
    """Profile one entry point in a fresh worker and return the final report (never raises for user errors).

    ``grace_s`` on top of the run's own timeout covers importing torch; past it the worker is killed.
    ``on_final(report)`` is called in this thread as soon as the final report is in, before the worker is
    shut down: the CLI writes the report there, so it is on disk while the worker is still exiting.
    """
    done = threading.Event()
    result: list[Report] = []

    def handle(event: p.Event) -> None:
        if on_event is not None:
            on_event(event)
        if isinstance(event, p.RunReport) and event.final:
            result.append(event.report)
            done.set()

    client = WorkerClient(handle)
    timed_out = False
    try:
        client.start()
        client.submit(entry, root, config)
        timed_out = not done.wait(config.timeout_s + grace_s)
        if not timed_out and on_final is not None:
            on_final(result[0])
            on_final = None
    finally:
        client.close(timeout=0.5 if timed_out else 3.0)
    done.wait(5.0)
    report = result[0] if result else Report(entry_point=str(entry), project_root=str(root or ""))
    if timed_out:
        report = report.replace(error=ErrorInfo(
            kind="timeout", message=f"no result within {config.timeout_s + grace_s:g} s; the worker was stopped"))
    if on_final is not None:  # no final report came before the time ran out: this one says why
        on_final(report)
    return report
