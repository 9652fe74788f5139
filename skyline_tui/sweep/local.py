"""Trials on this machine: one after another through one warm worker per device.

Two timing runs sharing a GPU (or the CPU) slow each other down and corrupt both numbers, so a device
runs one trial at a time.  The worker imports torch once and forks a fresh child per trial, so a sweep pays
for one torch import per device, not one per trial, and a trial that crashes or hangs takes only its
child down.  With several GPUs each gets its own worker (``CUDA_VISIBLE_DEVICES``), one trial per GPU.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Optional

from skyline_tui.report import ErrorInfo, Report
from skyline_tui.sweep.backend import OnResult, OnStart, SweepBackend
from skyline_tui.sweep.results import Trial, TrialResult
from skyline_tui.worker import protocol as p
from skyline_tui.worker.client import WorkerClient

# On top of a trial's own timeout (which the worker enforces): the first trial also waits for the worker
# to import torch.  Past it the worker is presumed stuck, stopped, and a fresh one serves the next trial.
GRACE_S = 60.0
IDLE_EXIT_WAIT_S = 0.2
POLL_S = 0.2  # how often the main thread wakes to let Ctrl-C in while it waits for results


def device_slots() -> list[dict[str, str]]:
    """One environment per device a trial may have to itself: one per GPU when there are several,
    else a single one (one GPU, or the CPU)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    else:
        ids = [str(i) for i in range(_nvml_gpu_count())]
    if len(ids) < 2:
        return [{}]
    return [{"CUDA_VISIBLE_DEVICES": gpu} for gpu in ids]


def _nvml_gpu_count() -> int:
    """GPUs seen by the driver, without importing torch here (NVML; 0 when there is no driver)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no library, no driver, no GPU: all mean "none"
        return 0


class _DeviceWorker:
    """A warm worker bound to one device, profiling one trial at a time."""

    def __init__(self, env: dict[str, str], grace_s: float):
        self.env = env
        self.grace_s = grace_s
        self._generation = 0
        self._lock = threading.Lock()
        self._finished: Optional[tuple[threading.Event, list[Report]]] = None
        self.busy = False  # a trial is in flight
        self.client = self._new_client()

    def _new_client(self) -> WorkerClient:
        self._generation += 1
        generation = self._generation
        return WorkerClient(lambda event: self._on_event(generation, event), env=self.env)

    def _on_event(self, generation: int, event: p.Event) -> None:
        # Only final reports matter; the user's output (RunLog) would tear the live table.
        if isinstance(event, p.RunReport) and event.final:
            with self._lock:
                if generation != self._generation or self._finished is None:
                    return  # a report from a worker already given up on
                done, box = self._finished
            box.append(event.report)
            done.set()

    def profile(self, entry: str, root: Optional[str], trial: Trial) -> Report:
        done, box = threading.Event(), []  # type: tuple[threading.Event, list[Report]]
        with self._lock:
            self._finished = (done, box)
        self.busy = True
        self.client.submit(entry, root, trial.config)
        limit = trial.config.timeout_s + self.grace_s
        if done.wait(limit):
            self.busy = False
            return box[0]
        # The worker did not answer at all: replace it, and the trial is a timeout.
        with self._lock:
            old, self.client = self.client, self._new_client()
        old.close(timeout=0.5)
        self.busy = False
        return Report(entry_point=entry, project_root=root or "", error=ErrorInfo(
            kind="timeout", message=f"no result within {limit:g} s; the worker was stopped"))

    def close(self) -> None:
        # An idle worker has nothing left to clean up, and its interpreter takes ~2 s to tear torch down:
        # past a short wait it is killed.  A worker with a trial in flight (Ctrl-C) gets the time to kill
        # that trial's whole process group itself.
        self.client.close(timeout=3.0 if self.busy else IDLE_EXIT_WAIT_S)


class LocalBackend(SweepBackend):
    name = "local"

    def __init__(self, slots: Optional[list[dict[str, str]]] = None, grace_s: float = GRACE_S):
        self.slots = slots if slots is not None else device_slots()
        self.grace_s = grace_s

    def describe(self) -> str:
        if len(self.slots) > 1:
            return f"this machine, {len(self.slots)} GPUs, one trial per GPU"
        return "this machine, one trial at a time"

    def run(self, entry: str, root: Optional[str], trials: list[Trial], on_result: OnResult,
            on_start: Optional[OnStart] = None) -> None:
        waiting: queue.Queue[Trial] = queue.Queue()
        for trial in trials:
            waiting.put(trial)
        events: queue.Queue[tuple[str, object]] = queue.Queue()
        stop = threading.Event()
        workers = [_DeviceWorker(env, self.grace_s) for env in self.slots]
        threads = [threading.Thread(target=self._serve, args=(w, entry, root, waiting, events, stop),
                                    name=f"sweep-device-{i}", daemon=True) for i, w in enumerate(workers)]
        try:
            for thread in threads:
                thread.start()
            remaining = len(trials)
            while remaining:
                try:
                    kind, payload = events.get(timeout=POLL_S)
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and events.empty():
                        raise RuntimeError("every sweep worker thread stopped before the trials ended") from None
                    continue
                if kind == "start":
                    if on_start is not None:
                        on_start(payload)  # type: ignore[arg-type]
                else:
                    remaining -= 1
                    on_result(payload)  # type: ignore[arg-type]
        finally:
            # Ctrl-C or done: closing a worker kills the run child it has (a trial in flight is dropped,
            # not reported: it did not finish).
            stop.set()
            for worker in workers:
                worker.close()
            for thread in threads:
                thread.join(timeout=10.0)

    @staticmethod
    def _serve(worker: _DeviceWorker, entry: str, root: Optional[str], waiting: queue.Queue[Trial],
               events: queue.Queue[tuple[str, object]], stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                trial = waiting.get_nowait()
            except queue.Empty:
                return
            events.put(("start", trial))
            try:
                report = worker.profile(entry, root, trial)
            except Exception as exc:  # noqa: BLE001 - the worker would not start: a result, not a hang
                if stop.is_set():
                    return
                report = Report(entry_point=entry, project_root=root or "",
                                error=ErrorInfo(kind="internal", message=f"{type(exc).__name__}: {exc}"))
            if stop.is_set():
                return
            events.put(("result", TrialResult(trial=trial, report=report)))
