"""``track.log`` under ``skyline-tui run``: the metrics cross the run's event stream and are recorded with
the run, number for number as the script printed them; ``History.dataframe(kind="train")`` has them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skyline_tui.history import History

from ..sweep.test_sweep_script import stored_metrics
from ..track_support import TRAIN, plain_env, printed_records

pytest.importorskip("pandas")


def run_supervised(*args: str, store, events=None, **env: str) -> subprocess.CompletedProcess[str]:
    extra = ["--events", str(events)] if events else []
    return subprocess.run([sys.executable, "-m", "skyline_tui", "run", "-q", "--history", str(store), *extra,
                           str(TRAIN), *args], env=plain_env(**env), capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_metrics_logged_under_run_are_recorded_with_the_run_and_stream_as_events(tmp_path):
    store = tmp_path / "history.db"
    events = tmp_path / "events.jsonl"
    result = run_supervised("--steps", "10", "--log-text", store=store, events=events)
    assert result.returncode == 0, result.stderr
    logged = printed_records(result.stdout)
    assert [line for line in result.stderr.splitlines() if "skyline-tui track" in line] == [
        "skyline-tui track: warning: phase=str 'train' is not a number; skipped (this warning once for 'phase')"]
    with History(store, create=False) as history:
        (run,) = history.runs()
        assert run["kind"] == "train" and run["steps"] == 10
        assert stored_metrics(store, run["id"]) == logged
        frame = history.metrics(run["id"])
    assert list(frame["loss"]) == [v for _s, name, v in logged if name == "loss"]
    # The same records went through the event stream, in order, while the script ran.
    streamed = []
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "metrics":
            streamed += list(zip(event["steps"], event["names"], event["values"], strict=True))
    assert streamed == logged


def test_a_log_without_a_step_takes_the_runs_own_step_count(tmp_path):
    store = tmp_path / "history.db"
    result = run_supervised("--steps", "6", "--auto-step", store=store)
    assert result.returncode == 0, result.stderr
    logged = printed_records(result.stdout)
    assert [s for s, name, _v in logged if name == "loss"] == [1, 2, 3, 4, 5, 6]
    with History(store, create=False) as history:
        (run,) = history.runs()
    assert stored_metrics(store, run["id"]) == logged


def test_the_train_dataframe_has_one_row_per_run_with_its_knobs_metrics_speed_and_memory(tmp_path):
    store = tmp_path / "history.db"
    prints = {}
    for lr in (0.05, 0.3):
        knobs = json.dumps({"lr": lr})
        result = run_supervised("--steps", "8", "--lr", str(lr), store=store, SKYLINE_TUI_SWEEP_ID="s1",
                                SKYLINE_TUI_SWEEP_KNOBS=knobs)
        assert result.returncode == 0, result.stderr
        prints[lr] = printed_records(result.stdout)
    with History(store, create=False) as history:
        frame = history.dataframe(kind="train")
    assert len(frame) == 2 and set(frame["kind"]) == {"train"}
    assert list(frame["knobs.lr"]) == [0.05, 0.3] and set(frame["sweep_id"]) == {"s1"}
    for (_id, row), lr in zip(frame.iterrows(), (0.05, 0.3), strict=True):
        losses = [v for _s, name, v in prints[lr] if name == "loss"]
        accuracies = [v for _s, name, v in prints[lr] if name == "val_accuracy"]
        assert row["metrics.loss.final"] == losses[-1]
        assert row["metrics.loss.min"] == min(losses) and row["metrics.loss.max"] == max(losses)
        assert row["metrics.val_accuracy.final"] == accuracies[-1]
        assert row["metrics.val_accuracy.max"] == max(accuracies)
        assert row["samples_per_second"] > 0 and row["peak_bytes"] > 0 and row["steps"] == 8
