"""``skyline-tui sweep`` end to end: a real CLI subprocess, the real worker, real torch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from ..conftest import REPO
from ..processes import left_behind, new_marker
from ..sweep_support import (
    LOGGED,
    ctrl_c_answers,
    pareto_by_hand,
    run_sweep,
    sweep_command,
    sweep_env,
    trial_log,
)


def test_a_local_sweep_profiles_every_trial_through_one_worker_and_keeps_the_failing_one(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("hidden: {grid_search: [4, 16, 0, 64]}\nlr: 0.05\n")
    log = tmp_path / "trials.log"
    out = tmp_path / "sweep.json"
    result = run_sweep(spec, "--json", str(out), env=sweep_env(log))
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["entry_point"] == str((REPO / "tests/fixtures/sweep/logged_mlp.py").resolve())
    assert document["sweep_id"]
    trials = document["trials"]
    # Every knob in every trial's config, constants included, in the spec's order.
    assert [t["config"] for t in trials] == [{"hidden": h, "lr": 0.05} for h in (4, 16, 0, 64)]
    failing = trials[2]
    assert failing["error"]["kind"] == "user_code"
    assert "hidden must be positive, got 0" in failing["error"]["message"]
    assert failing["samples_per_second"] is None and failing["pareto"] is False
    for trial in (trials[0], trials[1], trials[3]):
        assert trial["error"] is None
        assert trial["samples_per_second"] > 0 and trial["iteration_ms"] > 0
        # 4 samples per iteration (the input provider's default batch size).
        assert trial["samples_per_second"] == pytest.approx(4 * 1000.0 / trial["iteration_ms"])
        assert trial["peak_bytes"] > 0
    assert [t["pareto"] for t in trials] == pareto_by_hand(trials)
    # The model provider saw each trial's knob once, and every trial ran in a child of the same worker:
    # torch was imported once for the whole sweep.
    calls = trial_log(log)
    assert [c["hidden"] for c in calls] == [4, 16, 0, 64]
    assert len({c["worker_pid"] for c in calls}) == 1
    # The final table names the failure and ranks the rest.
    assert "user_code" in result.stdout and "hidden=64 lr=0.05" in result.stdout


def test_a_sweep_where_no_trial_succeeds_exits_1(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("hidden: {grid_search: [0, -1]}\n")
    result = run_sweep(spec, "--json", "-", env=sweep_env(tmp_path / "trials.log"))
    assert result.returncode == 1, result.stderr[-3000:]
    trials = json.loads(result.stdout)["trials"]  # nothing but the JSON on stdout with --json -
    assert [t["error"]["kind"] for t in trials] == ["user_code", "user_code"]


SPEC_ERRORS = [
    # (what, the sweep file, words the one-line error must contain)
    ("unknown key", "hidden: {grid_search: [4, 8]}\nwidth: 3\n", "line 2: unknown knob 'width'"),
    ("malformed YAML", "hidden: {grid_search: [4, 8]}\nlr: [0.1, 0.2\nbatch_size: 4\n", "line 3: malformed YAML"),
    ("empty grid", "lr: 0.1\nhidden: {grid_search: []}\n", "line 2: 'hidden': empty grid_search"),
    ("bad built-in value", "precision: {grid_search: [fp32, fp8]}\n", "precision must be one of fp32, bf16, fp16"),
]


@pytest.mark.parametrize("what, text, words", SPEC_ERRORS, ids=[case[0] for case in SPEC_ERRORS])
def test_a_bad_spec_exits_2_naming_the_line_before_any_trial_runs(tmp_path, what, text, words):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(text)
    log = tmp_path / "trials.log"
    result = run_sweep(spec, env=sweep_env(log))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert trial_log(log) == []  # no provider ran: no trial started


def test_a_spec_key_no_provider_takes_but_a_built_in_knob_is_accepted(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("batch_size: {grid_search: [2, 6]}\nsleep_s: 0\n")
    out = tmp_path / "sweep.json"
    env = sweep_env(tmp_path / "trials.log")
    env["SWEEP_BATCH_LOG"] = str(tmp_path / "batches.log")
    result = run_sweep(spec, "--json", str(out), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    # The batch sizes the input provider was really asked for, trial after trial (the sweep has no
    # predictions: each trial asks for its own batch only).
    asked = [int(line) for line in (tmp_path / "batches.log").read_text().split()]
    assert [batch for n, batch in enumerate(asked) if n == 0 or asked[n - 1] != batch] == [2, 6], asked
    trials = json.loads(out.read_text())["trials"]
    assert [trial["config"]["batch_size"] for trial in trials] == [2, 6]
    # Hand check: the iteration ran at that batch: 2 and 6 samples per iteration_ms.
    for trial, batch in zip(trials, (2, 6), strict=True):
        assert trial["samples_per_second"] == pytest.approx(batch * 1000.0 / trial["iteration_ms"])


def test_ctrl_c_stops_the_sweep_leaves_no_process_and_keeps_finished_trials(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("sleep_s: {grid_search: [0, 0, 600, 0]}\n")
    log = tmp_path / "trials.log"
    out = tmp_path / "sweep.json"
    marker = new_marker()
    proc = subprocess.Popen(sweep_command(spec, "--json", str(out)), cwd=REPO, env=sweep_env(log, marker),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=ctrl_c_answers)
    try:
        for _ in range(3000):  # until the third trial is asleep in its provider (a bound, not a timing)
            if len(trial_log(log)) >= 3 or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert len(trial_log(log)) == 3, proc.poll()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted; 2 of 4 trials finished" in stderr
    trials = json.loads(out.read_text())["trials"]
    assert [t["config"] for t in trials] == [{"sleep_s": 0}, {"sleep_s": 0}]
    assert all(t["error"] is None for t in trials)
    assert len(trial_log(log)) == 3  # the fourth trial never started
    assert left_behind(marker) == []
    assert os.path.exists(out)


def test_every_trial_is_recorded_in_the_history_with_the_sweep_id_and_its_knobs(tmp_path):
    from skyline_tui.history import History

    pytest.importorskip("pandas")  # the pandas extra; .ci/run installs it
    spec = tmp_path / "sweep.yaml"
    spec.write_text("hidden: {grid_search: [4, 0]}\nbatch_size: {grid_search: [2, 3]}\n")
    store = tmp_path / "history.db"
    out = tmp_path / "sweep.json"
    result = run_sweep(spec, "--history", str(store), "--json", str(out), "--breakdown",
                       env=sweep_env(tmp_path / "t.log"))
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(out.read_text())
    with History(store) as history:
        frame = history.dataframe()
    assert len(frame) == 4  # one row per trial, the failed ones too
    assert set(frame["sweep_id"]) == {document["sweep_id"]}
    run_ids = [t["run_id"] for t in document["trials"]]
    assert sorted(run_ids) == sorted(frame.index)
    rows = frame.loc[run_ids]
    assert list(rows["knobs.hidden"]) == [4, 4, 0, 0]
    assert list(rows["knobs.batch_size"]) == [2, 3, 2, 3]
    assert list(rows["config.batch_size"]) == [2, 3, 2, 3]
    with History(store) as history:  # --breakdown: the recorded reports of the trials that ran have one
        breakdowns = [history.report(run_id).breakdown for run_id in run_ids]
    assert [b is not None for b in breakdowns] == [True, True, False, False]


def test_a_sweep_records_where_the_entrys_profiles_do_and_history_lists_its_trials(tmp_path):
    # The project root is the nearest folder with a marker above the entry's folder, for a sweep as for a
    # profile: its trials land in the store `skyline-tui history ENTRY` reads, not in one beside the entry.
    project = tmp_path / "project"
    (project / "experiments").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    entry = project / "experiments" / "entry.py"
    entry.write_text(LOGGED.read_text())
    spec = tmp_path / "sweep.yaml"
    spec.write_text("batch_size: {grid_search: [2, 3]}\n")
    env = sweep_env(tmp_path / "t.log")
    env.pop("SKYLINE_TUI_HISTORY")  # the default store, as a user gets it
    command = [part for part in sweep_command(spec, entry=entry) if part != "--no-history"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (project / ".skyline-tui" / "history.db").is_file()
    assert not (project / "experiments" / ".skyline-tui").exists()
    listed = subprocess.run([*command[:3], "history", str(entry), "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert listed.returncode == 0, listed.stderr
    assert sorted(run["batch_size"] for run in json.loads(listed.stdout)) == [2, 3]


def test_a_trial_past_its_timeout_is_a_result_and_the_sweep_goes_on(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("sleep_s: {grid_search: [600, 0]}\n")
    out = tmp_path / "sweep.json"
    result = run_sweep(spec, "--timeout", "3", "--json", str(out), env=sweep_env(tmp_path / "trials.log"))
    assert result.returncode == 0, result.stderr[-3000:]
    stuck, fine = json.loads(out.read_text())["trials"]
    assert stuck["error"]["kind"] == "timeout" and stuck["samples_per_second"] is None
    assert fine["error"] is None and fine["samples_per_second"] > 0


def test_with_two_devices_each_serves_trials_through_its_own_worker(tmp_path):
    """Two device slots (as with two GPUs) on this CPU-only machine: each has its own warm worker, every
    trial runs exactly once, and the slot's environment reaches the trial."""
    from skyline_tui.config import ProfileConfig
    from skyline_tui.sweep.local import LocalBackend
    from skyline_tui.sweep.results import make_trials

    from ..sweep_support import LOGGED

    log = tmp_path / "trials.log"
    trials = make_trials([{"hidden": h} for h in (4, 8, 12, 16)],
                         ProfileConfig.quick(breakdown=False, health=False, predictions=False))
    slots = [{"SWEEP_TRIAL_LOG": str(log)}, {"SWEEP_TRIAL_LOG": str(log)}]  # only the slots carry the log
    results = []
    LocalBackend(slots=slots).run(str(LOGGED), None, trials, results.append)
    assert sorted(r.trial.index for r in results) == [0, 1, 2, 3]
    assert all(r.ok for r in results), [r.error for r in results]
    calls = trial_log(log)
    assert sorted(c["hidden"] for c in calls) == [4, 8, 12, 16]
    assert len({c["worker_pid"] for c in calls}) == 2  # both workers served trials
