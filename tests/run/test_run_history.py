"""A supervised run in the history store: kind 'train', its steps as a DataFrame equal to what the script printed,
listed by `skyline-tui history`; a store of the previous version keeps its runs as kind 'profile'."""

from __future__ import annotations

import sqlite3
import subprocess

import pytest

from skyline_tui.history import History
from skyline_tui.history.train_steps import MAX_STEP_ROWS, step_rows
from skyline_tui.run.events import Step
from tests.history_support import make_report
from tests.run_support import TRAIN, command, environment, printed, step_count
from tests.history.test_history_store import write_version_2_store


def test_a_run_is_recorded_with_its_steps_and_listed_with_its_kind(tmp_path):
    store = tmp_path / "h.db"
    run = subprocess.run(command("-q", "--history", str(store), str(TRAIN / "gan.py")), cwd=tmp_path,
                         env=environment(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with History(store) as history:
        (recorded,) = history.runs(kind="train")
        frame = history.steps(recorded["id"])
        summary = history.summary(recorded["id"])
    assert recorded["kind"] == "train" and recorded["steps"] == step_count(run.stdout) == 20
    assert recorded["argv"] == [str(TRAIN / "gan.py")] and recorded["exit_code"] == 0
    lines = [line.split() for line in run.stdout.splitlines() if line.startswith("STEP ")]
    assert list(frame.index) == list(range(1, 21))
    assert list(frame["losses"]) == [[float(v) for v in line[3:6]] for line in lines]
    # The step's loss: D's, the sum of its real and fake halves, as the script prints it (in float32).
    assert list(frame["loss"]) == pytest.approx(printed(run.stdout, "LOSS_D"), rel=1e-6)
    assert set(frame["steps_merged"]) == {1}
    assert summary.steps == 20 and summary.loss.last == recorded["final_loss"]
    listed = subprocess.run(command()[:-1] + ["history", "--history", str(store)], cwd=tmp_path, env=environment(),
                            capture_output=True, text=True, timeout=60)
    header, row = listed.stdout.splitlines()
    assert header.split()[:5] == ["id", "time", "(UTC)", "kind", "entry"]
    assert row.split()[3] == "train" and "20 steps" in row


def test_a_long_run_is_downsampled_keeping_its_first_and_last_step():
    steps = [Step(index=i, end_s=i * 0.01, wall_ms=10.0 + i % 3, forward_ms=1.0, backward_ms=2.0, optimizer_ms=3.0,
                  evaluation_ms=0.0, other_ms=4.0, samples=32, losses=(float(i),), loss=float(i), loss_terms=1)
             for i in range(1, 12_001)]
    rows = step_rows(steps)
    assert len(rows) <= MAX_STEP_ROWS
    assert sum(row[1] for row in rows) == 12_000  # steps_merged
    assert rows[0][:2] == (1, 1) and rows[-1][:2] == (12_000, 1)
    group = rows[1]
    members = list(range(2, 2 + group[1]))
    assert group[0] == members[-1] and group[10] == sum(members) / len(members)  # the mean of its losses


def test_a_version_3_store_keeps_its_runs_as_profiles(tmp_path):
    path = tmp_path / "v3.db"
    write_version_2_store(path, make_report(tmp_path).to_json())
    with sqlite3.connect(path) as db:
        db.executescript("ALTER TABLE runs ADD COLUMN cpu_contention REAL; ALTER TABLE runs ADD COLUMN "
                         "page_faults_per_iteration REAL; ALTER TABLE runs ADD COLUMN page_fault_ms REAL; "
                         "PRAGMA user_version = 3;")
    with History(path) as history:
        (old,) = history.runs()
        assert old["kind"] == "profile" and old["steps"] is None
        assert history.runs(kind="train") == []


def test_a_store_that_cannot_be_written_costs_one_warning_line_not_the_run(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    store = blocker / "h.db"  # its folder is a file: the store cannot be created
    summary = tmp_path / "summary.json"
    run = subprocess.run(command("-q", "--json", str(summary), "--history", str(store), str(TRAIN / "sgd_by_hand.py"),
                                 "--steps", "3"), cwd=tmp_path, env=environment(), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and step_count(run.stdout) == 3
    warnings = [line for line in run.stderr.splitlines() if "not recorded" in line]
    assert len(warnings) == 1 and warnings[0].startswith("skyline-tui: warning: run not recorded in history (")
    assert str(store) in warnings[0] and summary.exists()
