"""Training-script trials on this machine: one per GPU (``CUDA_VISIBLE_DEVICES``), or ``--parallel N``
at once on the CPU (default one: trials sharing cores slow each other down, and their samples/s with them).

The parent polls each trial's process and events file; Ctrl-C sends SIGINT to every running trial's
session (the script's own handler runs, its run is recorded), waits a little, kills what is left, and
re-raises: no process is left behind.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Optional

from skyline_tui.sweep.local import device_slots
from skyline_tui.sweep.script_trials import STOP_GRACE_S, TrialProcess, TrialState

POLL_S = 0.2
Launch = Callable[[TrialState, dict[str, str]], TrialProcess]
Finished = Callable[[TrialProcess, int], None]


def trial_slots(parallel: int) -> tuple[list[dict[str, str]], str]:
    """One environment per trial that may run at once, and how the table says where trials run."""
    gpus = device_slots()
    if len(gpus) > 1:
        return gpus, f"this machine, {len(gpus)} GPUs, one trial per GPU"
    if parallel > 1:
        return [{} for _ in range(parallel)], (f"this machine, {parallel} trials at once: they share its cores "
                                               "and corrupt each other's timings")
    return [{}], "this machine, one trial at a time"


def run_local(states: list[TrialState], slots: list[dict[str, str]], launch: Launch, finished: Finished,
              tick: Optional[Callable[[], None]] = None) -> None:
    waiting = deque(states)
    running: dict[int, TrialProcess] = {}
    try:
        while waiting or running:
            for slot, env in enumerate(slots):
                if slot not in running and waiting:
                    running[slot] = launch(waiting.popleft(), env)
            for slot, process in list(running.items()):
                code = process.poll()
                if code is not None:
                    del running[slot]
                    finished(process, code)
            if tick is not None:
                tick()
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        stop_all(list(running.values()))
        raise


def stop_all(processes: list[TrialProcess]) -> None:
    """Ctrl-C to each, then SIGKILL past the grace; returns once every one has been reaped.  A second
    Ctrl-C meanwhile kills at once."""
    for process in processes:
        process.stop()
        process.state.status = "interrupted"
    deadline = time.monotonic() + STOP_GRACE_S + 5.0
    while any(p.process.poll() is None for p in processes):
        try:
            for process in processes:
                process.kill_if_overdue()
            time.sleep(0.05)
        except KeyboardInterrupt:
            for process in processes:
                process.stopped_at = 0.0  # overdue: the next pass kills
        if time.monotonic() > deadline:
            for process in processes:
                process.stopped_at = 0.0
    for process in processes:
        process.poll()
