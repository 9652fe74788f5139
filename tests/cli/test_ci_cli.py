"""The CI flags of ``skyline-tui ENTRY --json``: budgets (exit 3, one stderr line each, the report's
``budgets``), a baseline report, and bad input refused before anything is profiled (exit 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from skyline_tui.history import History
from skyline_tui.report import Report

from ..conftest import FIXTURES, QUICK_FLAGS, cli_env, run_cli

SLEEPY = FIXTURES / "ci" / "sleepy.py"  # each iteration sleeps 20 ms and holds an 8 MiB tensor
MIB = 1024 * 1024


def budget_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("budget failed:", "regression:"))]


def test_budgets_that_fail_exit_3_with_one_line_each_and_are_recorded(tmp_path):
    out = tmp_path / "report.json"
    result = run_cli(str(SLEEPY), "--json", str(out), "--no-predictions", "--no-health", *QUICK_FLAGS,
                     "--fail-if", "iteration_ms > 5ms",  # fails: at least the 20 ms sleep
                     "--fail-if", "iteration_ms < 20ms",  # passes, for the same reason
                     "--fail-if", "peak_memory > 4MiB",  # fails: the iteration holds 8 MiB
                     "--fail-if", "peak_memory < 8MiB",  # passes, for the same reason
                     "--fail-if", "peak_memory > 1GiB",  # passes
                     "--fail-if", "samples_per_second > 100")  # passes: 2 samples per >= 20 ms
    assert result.returncode == 3, result.stderr
    lines = budget_lines(result.stderr)
    assert len(lines) == 2, result.stderr
    assert re.fullmatch(r"budget failed: iteration_ms [\d.]+ ms > 5 ms", lines[0])
    assert re.fullmatch(r"budget failed: peak_memory [\d.]+ MiB > 4 MiB", lines[1])
    report = json.loads(out.read_text())  # written all the same
    budgets = report["budgets"]
    assert [b["expr"] for b in budgets] == ["iteration_ms > 5ms", "iteration_ms < 20ms", "peak_memory > 4MiB",
                                            "peak_memory < 8MiB", "peak_memory > 1GiB", "samples_per_second > 100"]
    assert [b["ok"] for b in budgets] == [False, True, False, True, True, True]
    assert budgets[0]["metric"] == "throughput.iteration_ms" and budgets[0]["limit"] == 5.0
    assert budgets[0]["value"] == report["throughput"]["iteration_ms"] >= 20.0
    assert budgets[2]["limit"] == 4 * MIB and budgets[2]["value"] == report["memory"]["peak_bytes"] >= 8 * MIB


def test_budgets_that_pass_and_a_baseline_within_noise_exit_0(tmp_path):
    # This machine's speed is not known in advance (a loaded one stretches the 20 ms sleep), so the baseline's
    # spread (500 ms) covers any plausible run: whatever the change, it lies inside the noise.
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({
        "schema_version": 1, "entry_point": "sleepy.py", "project_root": ".", "batch_size": 2,
        "throughput": {"samples_per_second": 2000.0 / 30, "iteration_ms": 30.0, "iteration_ms_stdev": 500.0,
                       "iterations_measured": 10}}))
    out = tmp_path / "report.json"
    result = run_cli(str(SLEEPY), "--json", str(out), "--no-predictions", "--no-health", "--no-memory", *QUICK_FLAGS,
                     "--fail-if", "iteration_ms > 2s", "--baseline", str(baseline), "--max-regression", "5")
    assert result.returncode == 0, result.stderr
    assert budget_lines(result.stderr) == []
    report = json.loads(out.read_text())
    assert report["budgets"][0]["ok"] is True
    comparison = report["baseline"]
    assert comparison["source"] == str(baseline) and comparison["max_regression_pct"] == 5.0
    assert comparison["ok"] is True
    time = {c["metric"]: c for c in comparison["changes"]}["throughput.iteration_ms"]
    assert time["noise"] >= 2 * 500.0 and not time["regressed"]


@pytest.mark.alone  # the iteration's spread must stay under its 10 ms slowdown (two xdist workers once broke it)
def test_a_baseline_regression_outside_the_noise_exits_3(tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({
        "schema_version": 1, "entry_point": "sleepy.py", "project_root": ".", "batch_size": 2,
        "throughput": {"samples_per_second": 200.0, "iteration_ms": 10.0, "iteration_ms_stdev": 0.01,
                       "iterations_measured": 10}}))
    out = tmp_path / "report.json"
    result = run_cli(str(SLEEPY), "--json", str(out), "--no-predictions", "--no-health", "--no-memory",
                     "--no-breakdown", *QUICK_FLAGS, "--baseline", str(baseline), "--max-regression", "50")
    assert result.returncode == 3, result.stderr
    lines = budget_lines(result.stderr)
    # >= 20 ms against 10 ms: at least 100 % slower and at least 50 % fewer samples/s.
    assert [line.split()[1] for line in lines] == ["throughput.samples_per_second", "throughput.iteration_ms"]
    assert json.loads(out.read_text())["baseline"]["ok"] is False


def test_a_history_run_as_baseline(tmp_path):
    """--baseline RUN_ID reads the run back from a real SQLite store; a 10 ms baseline with no spread
    makes the >= 20 ms iteration a regression."""
    store = tmp_path / "history.db"
    with History(store) as history:
        run_id = history.record(Report.from_dict({
            "schema_version": 1, "entry_point": "sleepy.py", "project_root": ".", "batch_size": 2,
            "throughput": {"samples_per_second": 200.0, "iteration_ms": 10.0, "iteration_ms_stdev": 0.01,
                           "iterations_measured": 10}}))
    out = tmp_path / "report.json"
    result = run_cli(str(SLEEPY), "--json", str(out), "--no-predictions", "--no-health", "--no-memory",
                     "--no-breakdown", *QUICK_FLAGS, "--history", str(store), "--baseline", str(run_id))
    assert result.returncode == 3, result.stderr
    comparison = json.loads(out.read_text())["baseline"]
    assert comparison["source"] == str(run_id) and not comparison["ok"]
    with History(store) as history:  # and this run was recorded next to it
        assert len(history.runs()) == 2


def refused(*args: str) -> tuple[int, str, str]:
    """Runs main() in a fresh interpreter; returns (status, stderr, modules of the worker's side loaded)."""
    probe = (f"import sys\nfrom skyline_tui.cli import main\nrc = main({list(args)!r})\n"
             "print(rc, [m for m in ('skyline_tui.worker.client', 'torch') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(),
                            timeout=120, stdin=subprocess.DEVNULL)
    rc, loaded = result.stdout.strip().split(" ", 1)
    return int(rc), result.stderr, loaded


@pytest.mark.parametrize("flags, message", [
    (["--fail-if", "peak_memory >> 2GiB"], "cannot read budget 'peak_memory >> 2GiB'"),
    (["--fail-if", "iteration_ms > 1ms", "--fail-if", "peek_memory > 2GiB"], "unknown metric 'peek_memory'"),
    (["--fail-if", "iteration_ms > 2GiB"], "unit 'GiB' does not fit iteration_ms"),
    (["--fail-if", "peak_memory > 2GiB", "--no-memory"], "a budget reads memory, which this run skips"),
    (["--baseline", "missing-report.json"], "cannot read baseline missing-report.json"),
    (["--baseline", "17"], "no history store to look the run up in"),  # cli_env turns the history off
    (["--baseline", "17", "--history", "/no/such/history.db"], "no history store at /no/such/history.db"),
    (["--max-regression", "5"], "--max-regression needs --baseline"),
    (["--trace", "/no/such/folder/t.json"], "cannot write the trace"),
    (["--trace", "t.json", "--no-breakdown"], "--trace needs the run-time breakdown"),
])
def test_bad_checks_are_refused_before_any_profiling(tmp_path, flags, message):
    out = tmp_path / "report.json"
    rc, stderr, loaded = refused(str(SLEEPY), "--json", str(out), *flags)
    assert rc == 2
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert loaded == "[]"  # no worker client (so no worker) and no torch
    assert not out.exists()


def test_ci_flags_need_a_headless_run():
    rc, stderr, loaded = refused(str(SLEEPY), "--fail-if", "iteration_ms > 5ms")
    assert rc == 2 and "--fail-if needs --json" in stderr and loaded == "[]"
