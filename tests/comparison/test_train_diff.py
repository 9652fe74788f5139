"""`skyline-tui diff A B` between two training runs recorded by `skyline-tui run` of a real script: each figure's
before and after are what the store holds (read with sqlite3 and zlib here, not through the code under test) or
what the script printed, and the verdicts are what a 100 ms pause per step must give."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import zlib
from pathlib import Path
from typing import Any

from skyline_tui.history import History
from tests.conftest import run_cli
from tests.history_support import make_report
from tests.run_support import TRAIN, command, environment, printed

PACED = str(TRAIN / "paced.py")


def record(store: Path, cwd: Path, *args: str) -> str:
    """Run paced.py under `skyline-tui run`, recorded in ``store``; what the script printed."""
    run = subprocess.run(command("-q", "--history", str(store), PACED, "--steps", "8", *args), cwd=cwd,
                         env=environment(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    return run.stdout


def stored(store: Path, run_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's row (as SQLite holds it) and its summary, decompressed by hand."""
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        row = dict(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
    return row, json.loads(zlib.decompress(row["report_zlib"]))


def diff_json(store: Path, *runs: str) -> dict[str, Any]:
    result = run_cli("diff", "--history", str(store), "--json", *runs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_pause_in_each_step_reads_slower_throughput_step_and_other_with_the_loss_unchanged(tmp_path):
    store = tmp_path / "h.db"
    quick = record(store, tmp_path)
    paused = record(store, tmp_path, "--pause-ms", "100")
    (row_a, summary_a), (row_b, summary_b) = stored(store, 1), stored(store, 2)
    result = diff_json(store, "1", "2")

    assert result["kind"] == "train" and result["a"]["id"] == 1 and result["b"]["id"] == 2
    assert result["b"]["argv"] == [PACED, "--steps", "8", "--pause-ms", "100"]
    assert result["steps"] == {"before": 8, "after": 8}
    assert (result["throughput"]["before"], result["throughput"]["after"]) == \
        (row_a["samples_per_second"], row_b["samples_per_second"])
    assert (result["step_ms"]["median"]["before"], result["step_ms"]["median"]["after"]) == \
        (row_a["iteration_ms"], row_b["iteration_ms"])
    assert (result["step_ms"]["p90"]["before"], result["step_ms"]["p90"]["after"]) == \
        (summary_a["step_ms"]["p90"], summary_b["step_ms"]["p90"])
    for phase in ("forward", "backward", "optimizer", "other"):
        assert (result["phases_ms"][phase]["before"], result["phases_ms"][phase]["after"]) == \
            (summary_a["phases_ms"][phase], summary_b["phases_ms"][phase])
    for name in ("peak_allocated", "peak_reserved", "peak_rss"):
        assert (result["memory"][name]["before"], result["memory"][name]["after"]) == \
            (summary_a["memory"][name], summary_b["memory"][name])
    # Same seed, same steps: the script printed the same last loss twice.
    assert printed(quick)[-1] == printed(paused)[-1] == result["final_loss"]["before"] == result["final_loss"]["after"]
    assert result["final_loss"]["verdict"] == "same" and result["final_loss"]["delta_percent"] == 0.0
    # 100 ms of sleep per step against a step of a few ms: more than the 2x an unknown drift could explain.
    assert result["throughput"]["verdict"] == "slower"
    assert result["step_ms"]["median"]["verdict"] == "slower"
    assert result["phases_ms"]["other"]["verdict"] == "slower"
    text = run_cli("diff", "--history", str(store), "1", "2")
    assert text.returncode == 0, text.stderr
    verdicts = {name: next(line.split()[-1] for line in text.stdout.splitlines() if f" {name} " in line)
                for name in ("samples/s", "other", "final loss")}
    assert verdicts == {"samples/s": "slower", "other": "slower", "final loss": "same"}


def test_the_same_script_and_arguments_twice_differ_by_noise_alone(tmp_path):
    store = tmp_path / "h.db"
    record(store, tmp_path)
    record(store, tmp_path)
    result = diff_json(store)  # no run named: the last two training runs
    assert (result["a"]["id"], result["b"]["id"]) == (1, 2)
    figures = [result["throughput"], *result["step_ms"].values(), *result["phases_ms"].values(),
               *result["memory"].values(), result["final_loss"]]
    assert {fact["verdict"] for fact in figures if fact["before"] is not None} == {"same"}
    assert any("same script, arguments and source" in line for line in result["cautions"])


def test_a_profile_and_a_training_run_are_not_compared(tmp_path):
    store = tmp_path / "h.db"
    record(store, tmp_path)
    with History(store) as history:
        assert history.record(make_report(tmp_path)) == 2
    for runs in (("1", "2"), ("2", "1")):
        result = run_cli("diff", "--history", str(store), *runs)
        assert result.returncode == 2
        assert result.stderr.strip() == ("skyline-tui: run 2 is a profile and run 1 a training run: diff compares "
                                         "two profiles, or two training runs")
