"""The Ray path on a real local Ray cluster (``ray.init(num_cpus=2, include_dashboard=False)``), through
the CLI.  Marked ``ray``: deselect with ``-m "not ray"``; CI installs the extra and runs it."""

from __future__ import annotations

import json

import pytest

from ..processes import left_behind, new_marker
from ..sweep_support import pareto_by_hand, run_sweep, sweep_env, trial_log

pytest.importorskip("ray")
# One local Ray cluster at a time: tests run on two or more xdist workers (pyproject.toml's addopts).
pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


def test_a_ray_sweep_runs_each_trial_as_a_task_and_shuts_its_local_cluster_down(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("hidden: {grid_search: [4, 0, 16, 32]}\n")
    log = tmp_path / "trials.log"
    out = tmp_path / "sweep.json"
    marker = new_marker()
    env = sweep_env(log, marker)
    env.pop("RAY_ADDRESS", None)  # no address: the sweep starts its own cluster
    result = run_sweep(spec, "--ray", "--ray-cpus", "2", "--json", str(out), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = json.loads(out.read_text())["trials"]
    assert [t["config"] for t in trials] == [{"hidden": h} for h in (4, 0, 16, 32)]
    assert trials[1]["error"]["kind"] == "user_code"
    assert "hidden must be positive, got 0" in trials[1]["error"]["message"]
    for trial in (trials[0], trials[2], trials[3]):
        assert trial["error"] is None
        assert trial["samples_per_second"] == pytest.approx(4 * 1000.0 / trial["iteration_ms"])
        assert trial["peak_bytes"] > 0
    assert [t["pareto"] for t in trials] == pareto_by_hand(trials)
    # Each trial's provider ran once, in a worker of its own Ray task.
    calls = trial_log(log)
    assert sorted(c["hidden"] for c in calls) == [0, 4, 16, 32]
    # The cluster the sweep started is gone: no raylet, GCS or Ray worker carries our marker.
    assert left_behind(marker) == []


def test_ray_missing_is_a_clear_error_naming_the_extra(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("hidden: 4\n")
    blocker = tmp_path / "no_ray"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('ray is hidden for this test')\n")
    env = sweep_env(tmp_path / "trials.log")
    env["PYTHONPATH"] = f"{blocker}:{env['PYTHONPATH']}"
    result = run_sweep(spec, "--ray", env=env)
    assert result.returncode == 2
    assert "pip install 'skyline-tui[ray]'" in result.stderr
    assert trial_log(tmp_path / "trials.log") == []


def test_ctrl_c_on_a_ray_sweep_stops_its_tasks_and_cluster_and_keeps_finished_trials(tmp_path):
    import signal
    import subprocess
    import time

    from ..conftest import REPO
    from ..sweep_support import ctrl_c_answers, sweep_command

    spec = tmp_path / "sweep.yaml"
    spec.write_text("sleep_s: {grid_search: [0, 600]}\n")
    log = tmp_path / "trials.log"
    out = tmp_path / "sweep.json"
    marker = new_marker()
    env = sweep_env(log, marker)
    env.pop("RAY_ADDRESS", None)
    # One CPU: the trials run one after another, so the first has finished when the second is asleep.
    proc = subprocess.Popen(sweep_command(spec, "--ray", "--ray-cpus", "1", "--json", str(out)), cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=ctrl_c_answers)
    try:
        for _ in range(3000):  # until the second trial is asleep in its provider (a bound, not a timing)
            if len(trial_log(log)) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert len(trial_log(log)) == 2, proc.poll()
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr[-3000:]
    trials = json.loads(out.read_text())["trials"]
    assert [t["config"] for t in trials] == [{"sleep_s": 0}]
    assert left_behind(marker) == []  # no raylet, GCS, Ray worker or profiling worker
