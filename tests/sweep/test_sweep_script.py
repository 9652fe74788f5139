"""``skyline-tui sweep train.py grid.yaml`` end to end: a real CLI subprocess, each trial a real
``skyline-tui run`` of a real training script, a real SQLite store.  Every number checked against what the
script itself printed (its ``TRACKED`` lines, in each trial's log)."""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from skyline_tui.history import History

from ..processes import left_behind, new_marker
from ..sweep_support import ctrl_c_answers
from ..track_support import EXPERIMENTS, TRAIN, plain_env, printed_records

QUICK = ["-q"]


def sweep_command(spec: Path, store: Path, *flags: str, script: Path = TRAIN) -> list[str]:
    return [sys.executable, "-m", "skyline_tui", "sweep", str(script), str(spec), *QUICK, "--history", str(store),
            *flags]


def sweep_env(tmp_path: Path, marker: str = "") -> dict[str, str]:
    env = plain_env(TRAIN_LOG=str(tmp_path / "train.log"))
    if marker:
        env["SKYLINE_TEST_MARKER"] = marker
    return env


def notes(tmp_path: Path) -> list[dict]:
    path = tmp_path / "train.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def trial_output(store: Path, sweep_id: str, index: int) -> str:
    """A trial's own output (the script's stdout and stderr), kept in the sweep's folder."""
    return (store.parent / "sweeps" / sweep_id / f"trial-{index + 1}.log").read_text()


def stored_metrics(store: Path, run_id: int) -> list[tuple[int, str, float]]:
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT step, name, value FROM metrics WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
    return [(s, n, math.nan if v is None else v) for s, n, v in rows]


def test_a_grid_of_four_trials_two_at_a_time_records_what_each_script_logged(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("lr: {grid_search: [0.05, 0.2]}\nhidden: {grid_search: [8, 16]}\nsteps: 8\nsleep: 0.2\n")
    store = tmp_path / "store" / "history.db"
    out = tmp_path / "sweep.json"
    result = subprocess.run(sweep_command(spec, store, "--parallel", "2", "--metric", "loss", "--json", str(out)),
                            cwd=tmp_path, env=sweep_env(tmp_path), capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["script"] == str(TRAIN)
    trials = document["trials"]
    assert [t["config"] for t in trials] == [{"lr": lr, "hidden": h, "steps": 8, "sleep": 0.2}
                                             for lr in (0.05, 0.2) for h in (8, 16)]
    with History(store, create=False) as history:
        runs = {run["id"]: run for run in history.runs(sweep_id=document["sweep_id"])}
    assert sorted(runs) == sorted(t["run_id"] for t in trials)
    for index, trial in enumerate(trials):
        logged = printed_records(trial_output(store, document["sweep_id"], index))
        losses = [value for _step, name, value in logged if name == "loss"]
        assert len(losses) == 8
        assert trial["exit_code"] == 0 and trial["error"] is None
        assert trial["steps"] == 8  # the run counted the script's 8 optimizer steps
        assert trial["samples_per_second"] > 0
        assert trial["metrics"]["loss"] == {"last": losses[-1], "best": min(losses)}
        assert stored_metrics(store, trial["run_id"]) == logged
        assert runs[trial["run_id"]]["knobs"] == trial["config"]
    # Two at a time: the second trial started before the first one ended.
    events = [(n["event"], n["pid"]) for n in notes(tmp_path)]
    assert [e for e, _pid in events[:2]] == ["start", "start"], events


def test_a_trial_that_fails_is_a_result_with_its_error_and_what_it_logged_before(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("fail_at_step: {grid_search: [-1, 3]}\nsteps: 6\n")
    store = tmp_path / "history.db"
    out = tmp_path / "sweep.json"
    result = subprocess.run(sweep_command(spec, store, "--json", str(out)), cwd=tmp_path, env=sweep_env(tmp_path),
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]  # one trial succeeded: the sweep ran
    document = json.loads(out.read_text())
    good, bad = document["trials"]
    assert good["exit_code"] == 0 and good["steps"] == 6
    assert bad["exit_code"] == 1
    assert "failing at step 3, as asked" in bad["error"]
    assert bad["steps"] == 3
    logged = printed_records(trial_output(store, document["sweep_id"], 1))
    assert [step for step, name, _v in logged if name == "loss"] == [0, 1, 2]
    assert stored_metrics(store, bad["run_id"]) == logged


def test_ctrl_c_stops_every_trial_and_resume_runs_only_the_unfinished_ones(tmp_path):
    spec = tmp_path / "grid.yaml"
    # 20 steps of 0.1 s: the second trial is 2 s long, far more than the ~0.1 s from its start note to Ctrl-C.
    spec.write_text("sleep: {grid_search: [0.0, 0.1, 0.1]}\nsteps: 20\n")
    store = tmp_path / "history.db"
    marker = new_marker()
    env = sweep_env(tmp_path, marker)
    proc = subprocess.Popen(sweep_command(spec, store), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, preexec_fn=ctrl_c_answers)
    try:
        for _ in range(3000):  # until the second trial trains (a bound on waiting, not a timing)
            if sum(n["event"] == "start" for n in notes(tmp_path)) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr[-3000:]
    assert left_behind(marker) == []
    sweep_id = stderr.split("--resume ")[1].split()[0]
    first = notes(tmp_path)
    assert [n["event"] for n in first] == ["start", "end", "start"]  # the second trial never ended
    resumed = subprocess.run(sweep_command(spec, store, "--resume", sweep_id, "--json", "-"), cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "1 of 3 trials finished before" in resumed.stderr
    later = notes(tmp_path)[len(first):]
    assert sorted(n["sleep"] for n in later if n["event"] == "start") == [0.1, 0.1]  # trials 2 and 3 only
    document = json.loads(resumed.stdout)
    assert document["sweep_id"] == sweep_id
    assert [t["exit_code"] for t in document["trials"]] == [0, 0, 0]
    assert [t["steps"] for t in document["trials"]] == [20, 20, 20]


def test_a_plain_script_sweep_without_history_imports_neither_torch_nor_textual_in_the_parent(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("steps: 2\n")
    modules = tmp_path / "modules.txt"
    probe = ("from skyline_tui.cli import main\n"
             f"code = main(['sweep', {str(TRAIN)!r}, {str(spec)!r}, '-q', '--no-history'])\n"
             "assert code == 0, code\nimport sys\n"
             f"open({str(modules)!r}, 'w').write(' '.join(sorted(sys.modules)))")
    subprocess.run([sys.executable, "-c", probe], cwd=EXPERIMENTS, env=plain_env(), capture_output=True, text=True,
                   timeout=300, check=True)
    loaded = set(modules.read_text().split())
    assert "skyline_tui.sweep.script_local" in loaded  # it really ran the script sweep
    assert not {name.split(".")[0] for name in loaded} & {"torch", "textual", "ray"}
