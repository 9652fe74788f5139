"""``track.log`` in a plain ``python train.py`` run: what the script logged lands in the project's store,
number for number; bad values cost one warning and never the run; the store can be turned off."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys

import pytest

from skyline_tui.history import History
from skyline_tui.track.recorder import Tracker
from skyline_tui.track.values import as_number, as_step

from ..conftest import REPO
from ..track_support import plain_env, printed_records, project_copy, run_plainly


def stored_records(db, run_id: int) -> list[tuple[int, str, float]]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT step, name, value FROM metrics WHERE run_id = ? ORDER BY rowid",
                                  (run_id,)).fetchall()
    return [(step, name, math.nan if value is None else value) for step, name, value in rows]


def test_a_plain_run_records_what_the_script_logged_in_the_project_store(tmp_path):
    project = project_copy(tmp_path, "train.py")
    result = run_plainly(project / "train.py", "--steps", "9", "--lr", "0.05", env=plain_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    logged = printed_records(result.stdout)
    assert len(logged) == 9 + 2  # a loss per step, an accuracy at steps 3 and 7
    db = project / ".skyline-tui" / "history.db"  # under the script's project root, not the working folder
    with History(db, create=False) as history:
        (run,) = history.runs()
        assert run["entry_point"] == str(project / "train.py")
        assert run["kind"] == "train"
        assert history.summary(run["id"]).argv == (str(project / "train.py"), "--steps", "9", "--lr", "0.05")
        assert stored_records(db, run["id"]) == logged
        frame = history.metrics(run["id"])
    assert list(frame.columns) == ["step", "loss", "val_accuracy"]
    assert list(frame["step"]) == list(range(9))
    losses = {step: value for step, name, value in logged if name == "loss"}
    assert list(frame["loss"]) == [losses[step] for step in range(9)]
    accuracies = {step: value for step, name, value in logged if name == "val_accuracy"}
    assert frame.set_index("step")["val_accuracy"].dropna().to_dict() == accuracies


def test_a_value_that_is_not_a_number_is_skipped_with_one_warning_and_training_goes_on(tmp_path):
    project = project_copy(tmp_path, "train.py")
    result = run_plainly(project / "train.py", "--steps", "6", "--log-text", env=plain_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trained 6 steps" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "skyline-tui track" in line]
    assert len(warnings) == 1, result.stderr
    assert "phase=str 'train' is not a number" in warnings[0]
    db = project / ".skyline-tui" / "history.db"
    with History(db, create=False) as history:
        (run,) = history.runs()
    assert stored_records(db, run["id"]) == printed_records(result.stdout)  # the numbers all kept


@pytest.mark.parametrize("variable", ["SKYLINE_TUI_HISTORY", "SKYLINE_TUI_TRACK"])
def test_off_records_nothing(tmp_path, variable):
    project = project_copy(tmp_path, "train.py")
    result = run_plainly(project / "train.py", "--steps", "3", env=plain_env(**{variable: "off"}), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skyline-tui" not in result.stderr
    assert not (project / ".skyline-tui").exists()


def test_history_path_in_the_environment_chooses_the_store(tmp_path):
    project = project_copy(tmp_path, "train.py")
    db = tmp_path / "elsewhere.db"
    result = run_plainly(project / "train.py", "--steps", "3", env=plain_env(SKYLINE_TUI_HISTORY=str(db)),
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (project / ".skyline-tui").exists()
    with History(db, create=False) as history:
        (run,) = history.runs()
    assert stored_records(db, run["id"]) == printed_records(result.stdout)


def test_a_script_that_crashes_keeps_every_record_it_logged(tmp_path):
    project = project_copy(tmp_path, "train.py")
    result = run_plainly(project / "train.py", "--steps", "9", "--fail-at-step", "6", env=plain_env(), cwd=tmp_path)
    assert result.returncode == 1 and "failing at step 6, as asked" in result.stderr
    logged = printed_records(result.stdout)
    assert [step for step, name, _v in logged if name == "loss"] == list(range(6))
    db = project / ".skyline-tui" / "history.db"
    with History(db, create=False) as history:
        (run,) = history.runs()
    assert stored_records(db, run["id"]) == logged


def test_an_unwritable_store_costs_one_warning_not_the_run(tmp_path):
    project = project_copy(tmp_path, "train.py")
    not_a_db = tmp_path / "not-a-db"
    not_a_db.write_text("this is not SQLite\n" * 100)
    result = run_plainly(project / "train.py", "--steps", "4", env=plain_env(SKYLINE_TUI_HISTORY=str(not_a_db)),
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trained 4 steps" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "skyline-tui track" in line]
    assert len(warnings) == 1 and "not-a-db" in warnings[0], result.stderr


def test_values_and_steps_a_script_may_pass():
    import numpy
    import torch

    assert as_number(0.25) == 0.25 and as_number(3) == 3.0 and as_number(True) == 1.0
    assert as_number(numpy.float32(0.5)) == 0.5
    assert as_number(torch.tensor(1.5)) == 1.5 and as_number(torch.tensor([2.0])) == 2.0
    assert math.isnan(as_number(float("nan")))
    for bad in ("0.5", b"1", None, torch.ones(3), [1.0], {"a": 1}, object()):
        assert as_number(bad) is None, bad
    assert as_step(7) == 7 and as_step(7.0) == 7 and as_step(torch.tensor(3)) == 3
    for bad in (-1, 1.5, "3", True, float("inf")):
        assert as_step(bad) is None, bad


@pytest.mark.parametrize("background", [False, True])
def test_without_a_step_each_call_is_the_next_step_and_a_given_step_moves_the_count(background):
    written: list[list[tuple[int, str, float]]] = []

    class Memory:
        def write(self, records):
            written.append(list(records))

        def close(self):
            pass

    tracker = Tracker(sink_factory=Memory, flush_every=4, background=background)
    tracker.log(a=1.0)
    tracker.log(a=2.0, b=3)
    tracker.log(step=10, a=4.0)
    tracker.log(a=5.0)
    tracker.log(b=6.0, c=7.0, d=8.0)
    tracker.close()
    # A batch is handed over once it holds 4 records (by the writer thread in the background); the rest at close.
    assert written == [[(0, "a", 1.0), (1, "a", 2.0), (1, "b", 3.0), (10, "a", 4.0)],
                       [(11, "a", 5.0), (12, "b", 6.0), (12, "c", 7.0), (12, "d", 8.0)]]


def test_importing_track_imports_neither_torch_nor_sqlite():
    probe = ("import sys\nfrom skyline_tui import track\ntrack.log(x=1.0)\n"
             "print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=plain_env(SKYLINE_TUI_TRACK="off"),
                            capture_output=True, text=True, timeout=60, check=True)
    roots = {name.split(".")[0] for name in result.stdout.split()}
    assert not roots & {"torch", "textual", "rich", "sqlite3", "pandas"}
