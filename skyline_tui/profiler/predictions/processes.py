"""On CPU, each predicted batch size is measured in a process of its own, as a training run at that size would be.

Under glibc's malloc a CPU iteration's time depends on the process's allocation history: freed blocks go back
to the system, or stay, by thresholds that rise after large frees (``faults.py``).  Measured one after another
in the profile's process, a batch size inherits what the larger ones before it left: the bundled lstm at 96
ran 11.5-12.0 ms with no page faults there, while a fresh process at 96 ran 20.8-22.3 ms with 5,800-7,900
faults an iteration (and the 3x prediction came out 13.5-20.8 ms in three ``--json`` runs).  A process that
loads the entry point at one batch size and runs only that one is what a training run at that size is.

Forking is the only cheap way to a fresh process with torch imported, and a process that has run a parallel
torch op cannot fork: OpenMP's thread pool does not survive it, and the forked process hangs in its first
parallel op.  So the run child forks a *spawner* once it has imported the entry point's module (with what it
imports, torchvision say: no measurer pays for that again) and before it builds anything; for each batch
size the spawner forks a *measurer*, which builds the model and inputs at that batch, measures them
(``timing.measure_point``) and writes the result back.  The spawner never runs an op itself.

Not on CUDA (the device cannot be shared across a fork; the device's memory, not the host's allocator, is
what matters there), not with ``torch.compile`` (every measurer would compile again), and only where
``os.fork`` exists and the process is still single-threaded: elsewhere the predictions measure in-process.
Each measurer calls the entry's providers again, so their output shows once more per batch size.  Its model
sits beside the run child's: out of memory, the kernel's killer is told to take the measurer first, and a
measurer killed by SIGKILL counts as out of memory at its batch size.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import struct
import sys
import threading
import time
from typing import Any, Optional

from skyline_tui.config import ProfileConfig
from skyline_tui.lifetime import MEASURER_NAME, die_with_parent, name_this_process
from skyline_tui.profiler.predictions.timing import PointPlan, PointResult, measure_point
from skyline_tui.profiler.entry import EntryPoint
from skyline_tui.profiler.errors import ProfileError, from_exception
from skyline_tui.profiler.memory import measure_peak
from skyline_tui.profiler.workload import load_workload
from skyline_tui.report import ErrorInfo

HEADER = struct.Struct(">I")


class SpawnerGone(Exception):
    """The spawner died (killed, or a fork it made failed): the predictions carry on in the run's process."""


class BatchProcesses:
    """The run child's handle on its spawner: ``measure`` one batch size in a fresh process, ``close`` at the end."""

    def __init__(self, pid: int, requests: int, results: int):
        self.pid = pid
        self._requests = requests
        self._results = results

    @classmethod
    def start(cls, entry: EntryPoint) -> Optional["BatchProcesses"]:
        """Fork the spawner now, for ``entry`` (imported, nothing built yet), or None where that is not safe
        (see the module docstring)."""
        if not hasattr(os, "fork") or not _single_threaded():
            return None
        _flush_output()  # what the module printed without a newline yet would be printed again by every measurer
        requests_r, requests_w = os.pipe()
        results_r, results_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the spawner: never returns
            try:
                os.close(requests_w)
                os.close(results_r)
                die_with_parent()
                _serve(entry, requests_r, results_w)
            finally:
                os._exit(0)
        os.close(requests_r)
        os.close(results_w)
        return cls(pid, requests_w, results_r)

    def measure(self, config: ProfileConfig, plan: PointPlan) -> PointResult:
        """Measure ``plan.batch`` in a fresh process.  Its failure is raised here as a ``ProfileError`` (kind
        "oom" for an out-of-memory error, or a kill by SIGKILL); ``SpawnerGone`` when there is no spawner."""
        try:
            _write(self._requests, (config, plan))
        except OSError:  # EPIPE: it is gone
            self.close()
            raise SpawnerGone() from None
        outcome: Any = None
        while True:
            message = _read(self._results)
            if message is None:
                self.close()
                raise SpawnerGone()
            if message[0] == "exited":
                break
            outcome = message
        if outcome is None:
            raise ProfileError(_death(plan.batch, message[1]))
        if outcome[0] == "error":
            raise ProfileError(outcome[1])
        result: PointResult = outcome[1]
        return result

    def close(self) -> None:
        """End the spawner (the end of its request pipe) and wait for it.  Safe to call twice."""
        if self._requests < 0:
            return
        for fd in (self._requests, self._results):
            os.close(fd)
        self._requests = self._results = -1
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _single_threaded() -> bool:
    if threading.active_count() > 1:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1  # threads Python did not start (OpenMP's pool)
    except OSError:
        return True  # no /proc: Python's own count is all there is


def _serve(entry: EntryPoint, requests: int, results: int) -> None:
    """The spawner's loop: a measurer per request, then its exit status, until the request pipe ends."""
    while True:
        request = _read(requests)
        if request is None:
            return
        pid = os.fork()
        if pid == 0:  # the measurer
            try:
                os.close(requests)
                die_with_parent()
                name_this_process(MEASURER_NAME)  # on a timeout the worker aborts it first: its stack is the user's
                _first_to_go_when_memory_runs_out()
                _write(results, _measure(entry, *request))
            finally:
                _flush_output()
                os._exit(0)
        _pid, status = os.waitpid(pid, 0)
        _write(results, ("exited", status))


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


OOM_SCORE_ADJ = "/proc/self/oom_score_adj"


def _first_to_go_when_memory_runs_out() -> None:
    """Linux: out of memory, the kernel kills the measurer rather than the run child (which holds the report so
    far) or anything else: it is the one process here whose loss costs one batch size's measurement."""
    try:
        with open(OOM_SCORE_ADJ, "w", encoding="ascii") as adj:
            adj.write("1000")
    except OSError:  # no such file (not Linux), or not allowed: the kernel chooses as it would
        pass


def _measure(entry: EntryPoint, config: ProfileConfig, plan: PointPlan) -> tuple[str, Any]:
    started = time.perf_counter()
    try:
        work = load_workload(entry, plan.batch, config)
        load_s = time.perf_counter() - started
        plan = dataclasses.replace(plan, warmup_s=config.warmup_s)  # cold, as the headline's process was
        result = measure_point(work, config, work.inputs, plan, measure_peak)
        return "ok", dataclasses.replace(result, load_s=load_s)
    except ProfileError as exc:
        return "error", exc.info
    except BaseException as exc:  # noqa: BLE001 - user code can raise anything; it is reported, not raised
        return "error", from_exception(exc, entry.files)


def _death(batch: int, status: int) -> ErrorInfo:
    """What a measurer that died before writing its result means."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGKILL:
            return ErrorInfo(kind="oom", message=f"the process measuring batch size {batch} was killed (SIGKILL): "
                                                 "most likely out of memory")
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return ErrorInfo(kind="crash", message=f"the process measuring batch size {batch} died of {name}")
    return ErrorInfo(kind="crash", message=f"the process measuring batch size {batch} exited with status "
                                           f"{os.waitstatus_to_exitcode(status)} before its result")


def _write(fd: int, message: Any) -> None:
    data = pickle.dumps(message)
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read(fd: int) -> Any:
    """The next message, or None at the end of the pipe."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    body = _read_exactly(fd, HEADER.unpack(header)[0])
    return None if body is None else pickle.loads(body)


def _read_exactly(fd: int, size: int) -> Optional[bytes]:
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
