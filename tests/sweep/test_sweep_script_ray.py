"""A training-script sweep on a real local Ray cluster (one cluster for the module): each trial a Ray task
running ``skyline-tui run`` of the script.  Marked ``ray``."""

from __future__ import annotations

import json
import subprocess

import pytest

from ..processes import left_behind, new_marker
from .test_sweep_script import stored_metrics, sweep_command, sweep_env, trial_output
from ..track_support import printed_records

pytest.importorskip("ray")
# One local Ray cluster at a time: tests run on two or more xdist workers (pyproject.toml's addopts).
pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


def test_a_ray_sweep_runs_each_trial_as_a_task_records_it_and_leaves_no_process(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("fail_at_step: {grid_search: [-1, 2]}\nsteps: 5\n")
    store = tmp_path / "history.db"
    out = tmp_path / "sweep.json"
    marker = new_marker()
    env = sweep_env(tmp_path, marker)
    env.pop("RAY_ADDRESS", None)  # the sweep starts its own cluster, and shuts it down
    result = subprocess.run(sweep_command(spec, store, "--ray", "--ray-cpus", "2", "--metric", "loss", "--json",
                                          str(out)), cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(out.read_text())
    good, bad = document["trials"]
    assert good["exit_code"] == 0 and good["steps"] == 5
    assert bad["exit_code"] == 1 and "failing at step 2, as asked" in bad["error"]
    for index, trial in enumerate((good, bad)):
        logged = printed_records(trial_output(store, document["sweep_id"], index))
        assert stored_metrics(store, trial["run_id"]) == logged
        losses = [v for _s, name, v in logged if name == "loss"]
        assert trial["metrics"]["loss"] == {"last": losses[-1], "best": min(losses)}
    assert left_behind(marker) == []
