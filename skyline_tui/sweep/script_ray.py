"""Training-script trials as Ray tasks (``--ray [ADDRESS]``), in the shape of ``ray_backend.py``.

Each task runs the same ``skyline-tui run`` of the script as a local trial (one GPU each on a cluster with
GPUs, one CPU otherwise), with the script at the same path on every node, and returns its result and its
tracked series; while it runs, it sends the trial's steps and new metric values to the driver every second
(a ``ray.util.queue.Queue``) for the live table.  Ctrl-C cancels every task without force first, so each
one stops its trial's session itself (a forced cancel kills the task's worker and would leave the trial
running), then with force.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

from skyline_tui.sweep.backend import BackendError
from skyline_tui.sweep.ray_backend import INSTALL_HINT
from skyline_tui.sweep.script_spec import ScriptTrial
from skyline_tui.sweep.script_trials import ScriptTrialResult, TrialProcess, TrialState

POLL_S = 0.5
PROGRESS_EVERY_S = 1.0  # how often a task sends its trial's steps and new metric values to the driver
CANCEL_GRACE_S = 10.0


def script_trial_task(script: str, trial: dict[str, Any], history: Optional[str], sweep_id: str,
                      cwd: Optional[str], mode: str, folder: str, progress: Any = None) -> dict[str, Any]:
    """The task body on a Ray worker: dicts in and out (plain data crosses Ray's serialisation).  The
    trial's files go to the sweep's folder where this node can write it (the same machine, a shared disk),
    else to a temporary folder of the node's."""
    from skyline_tui.sweep.script_local import stop_all

    state = TrialState(ScriptTrial(index=trial["index"], knobs=trial["knobs"], argv=tuple(trial["argv"])))
    where = Path(folder)
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        where = Path(tempfile.mkdtemp(prefix="skyline-ray-trial-"))
    process = TrialProcess(state, script, where, history, sweep_id, env={}, cwd=cwd)
    sent: dict[str, int] = {}
    last = time.monotonic()
    try:
        while (code := process.poll()) is None:
            time.sleep(0.1)
            if progress is not None and time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                _report(progress, state, sent)
    except KeyboardInterrupt:  # ray.cancel without force
        stop_all([process])
        raise
    return {"result": process.result(code, mode).to_dict(), "series": state.series, "steps": state.steps}


def _report(progress: Any, state: TrialState, sent: dict[str, int]) -> None:
    """What the trial gained since the last report, to the driver's queue (new values only)."""
    fresh = {name: values[sent.get(name, 0):] for name, values in state.series.items()}
    for name, values in state.series.items():
        sent[name] = len(values)
    try:
        progress.put_nowait({"index": state.trial.index, "steps": state.steps, "recent": state.recent,
                             "series": {name: values for name, values in fresh.items() if values}})
    except Exception:  # noqa: BLE001 - a full or lost queue costs the live table a refresh, not the trial
        pass


def apply_progress(states: dict[int, TrialState], item: dict[str, Any]) -> None:
    state = states.get(item["index"])
    if state is None or state.result is not None:
        return
    state.steps = max(state.steps, int(item["steps"]))
    state.recent = [(int(s), float(ms)) for s, ms in item["recent"]]
    for name, values in item["series"].items():
        state.series.setdefault(name, []).extend(values)


class ScriptRayRunner:
    def __init__(self, address: Optional[str] = None, num_cpus: Optional[int] = None):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus

    def describe(self) -> str:
        return f"Ray cluster at {self.address}" if self.address else "a local Ray cluster"

    def check(self) -> Any:
        try:
            import ray
        except ImportError:
            raise BackendError(INSTALL_HINT) from None
        return ray

    def run(self, states: list[TrialState], script: str, history: Optional[str], sweep_id: str,
            cwd: Optional[str], mode: str, folder: str, finished: Callable[[ScriptTrialResult], None],
            tick: Optional[Callable[[], None]] = None) -> None:
        ray = self.check()
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                         log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; all mean "no cluster"
            raise BackendError(f"cannot start or join Ray ({self.describe()}): {exc}") from None
        pending: dict[Any, TrialState] = {}
        try:
            has_gpus = ray.cluster_resources().get("GPU", 0) > 0
            task = ray.remote(num_gpus=1)(script_trial_task) if has_gpus else \
                ray.remote(num_cpus=1)(script_trial_task)
            from ray.util.queue import Queue

            progress = Queue()  # an actor: the tasks' progress, drained by this loop for the live table
            by_index = {state.trial.index: state for state in states}
            for state in states:
                trial = state.trial
                ref = task.remote(script, {"index": trial.index, "knobs": trial.knobs, "argv": list(trial.argv)},
                                  history, sweep_id, cwd, mode, folder, progress)
                pending[ref] = state
                state.status = "running"  # queued on the cluster: Ray decides when it starts
            while pending:
                ready, _rest = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                waiting = progress.size()
                for item in progress.get_nowait_batch(waiting) if waiting else ():
                    apply_progress(by_index, item)
                for ref in ready:
                    state = pending.pop(ref)
                    finished(self._result(ray, ref, state))
                if tick is not None:
                    tick()
        except KeyboardInterrupt:
            self._cancel(ray, pending)
            raise
        finally:
            ray.shutdown()

    @staticmethod
    def _result(ray: Any, ref: Any, state: TrialState) -> ScriptTrialResult:
        try:
            data = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a task that died (node lost, worker crash) is a failed trial
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return ScriptTrialResult(trial=state.trial, exit_code=None, steps=None, samples_per_second=None,
                                     peak_bytes=None, metrics={}, run_id=None,
                                     error=f"the Ray task failed: {message}")
        state.series = {name: list(values) for name, values in data["series"].items()}
        state.steps = data["steps"]
        return ScriptTrialResult.from_dict(state.trial, data["result"])

    @staticmethod
    def _cancel(ray: Any, pending: dict[Any, TrialState]) -> None:
        for ref, state in pending.items():
            state.status = "interrupted"
            try:
                ray.cancel(ref, force=False)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        deadline = time.monotonic() + CANCEL_GRACE_S
        refs = list(pending)
        while refs and time.monotonic() < deadline:
            _done, refs = ray.wait(refs, num_returns=len(refs), timeout=0.5)
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
