"""Trials as Ray tasks (plain Ray Core), each running the same profiling worker as a local sweep.

``ray`` is imported only here, and only when ``--ray`` is used: it is an optional extra.  A task asks for
one GPU on a cluster that has GPUs (a trial then has its device to itself, as locally) and one CPU
otherwise.  Ray listens on network ports; the default (local) sweep opens none.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from skyline_tui.config import ProfileConfig
from skyline_tui.report import Report
from skyline_tui.sweep.backend import BackendError, OnResult, OnStart, SweepBackend
from skyline_tui.sweep.results import Trial, TrialResult, failed

POLL_S = 0.5  # ray.wait's timeout: how often Ctrl-C gets a chance while waiting for trials
INSTALL_HINT = "--ray needs Ray: pip install 'skyline-tui[ray]'"


def profile_trial(entry: str, root: Optional[str], config: dict[str, Any]) -> dict[str, Any]:
    """The task body, on a Ray worker: one trial through a fresh profiling worker (the same code path
    as ``skyline-tui ENTRY --json``).  Dicts in and out: plain data crosses Ray's serialisation."""
    from skyline_tui.headless import profile_headless

    return profile_headless(entry, root, ProfileConfig.from_dict(config)).to_dict()


class RayBackend(SweepBackend):
    name = "ray"

    def __init__(self, address: Optional[str] = None, num_cpus: Optional[int] = None):
        # Joining: an address given, or RAY_ADDRESS.  Otherwise a private local cluster, ours to shut down.
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus

    def describe(self) -> str:
        return f"Ray cluster at {self.address}" if self.address else "a local Ray cluster"

    def check(self) -> None:
        self._ray()

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise BackendError(INSTALL_HINT) from None
        return ray

    def run(self, entry: str, root: Optional[str], trials: list[Trial], on_result: OnResult,
            on_start: Optional[OnStart] = None) -> None:
        ray = self._ray()
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count() or 1,
                         include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; all mean "no cluster"
            raise BackendError(f"cannot start or join Ray ({self.describe()}): {exc}") from None
        pending: dict[Any, Trial] = {}
        try:
            has_gpus = ray.cluster_resources().get("GPU", 0) > 0
            task = ray.remote(num_gpus=1)(profile_trial) if has_gpus else ray.remote(num_cpus=1)(profile_trial)
            for trial in trials:
                pending[task.remote(entry, root, trial.config.to_dict())] = trial
                if on_start is not None:
                    on_start(trial)  # queued on the cluster; Ray decides when it starts
            while pending:
                ready, _rest = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    trial = pending.pop(ref)
                    on_result(self._result(ray, ref, trial, entry))
        finally:
            for ref in pending:  # Ctrl-C: stop what is queued or running (its worker dies with it)
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
            ray.shutdown()  # stops the local cluster we started; only disconnects from a joined one

    @staticmethod
    def _result(ray: Any, ref: Any, trial: Trial, entry: str) -> TrialResult:
        try:
            return TrialResult(trial=trial, report=Report.from_dict(ray.get(ref)))
        except Exception as exc:  # noqa: BLE001 - a task that died (node lost, worker crash) is a failed trial
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return failed(trial, entry, "crash", f"the Ray task failed: {message}")
