"""Baseline comparison: a regression fails only beyond --max-regression AND beyond both runs' noise.

Hand-made reports with chosen means and standard deviations; the rule (baseline.py) is
worse_by > PCT % of the baseline and worse_by > 2 * (stdev_baseline + stdev_current).
"""

from __future__ import annotations

import pytest

from skyline_tui.checks.baseline import BaselineError, compare, load_baseline
from skyline_tui.history import History
from skyline_tui.report import MemoryBreakdown, Report, Throughput

BATCH = 10


def run(iteration_ms: float, stdev_ms: float, peak_bytes: int = 1_000_000) -> Report:
    return Report(
        entry_point="e.py", project_root="", batch_size=BATCH,
        throughput=Throughput(samples_per_second=BATCH * 1000.0 / iteration_ms, iteration_ms=iteration_ms,
                              iteration_ms_stdev=stdev_ms, iterations_measured=20),
        memory=MemoryBreakdown(peak_bytes=peak_bytes, peak_source="test", capacity_bytes=None, weights_bytes=0,
                               gradients_bytes=0, optimizer_state_bytes=0, activations_bytes=0, other_bytes=0),
    )


def changes(comparison):
    return {change.metric: change for change in comparison.changes}


def test_twenty_percent_slower_with_steady_runs_regresses():
    result = compare(run(12.0, 0.1), run(10.0, 0.1), "base.json", max_regression_pct=10)
    by = changes(result)
    time = by["throughput.iteration_ms"]
    assert time.change_pct == pytest.approx(20.0)
    assert time.noise == pytest.approx(2 * (0.1 + 0.1))
    assert time.regressed
    rate = by["throughput.samples_per_second"]  # 1000 -> 833.3 samples/s: 16.7 % fewer
    assert rate.change_pct == pytest.approx(100 * (1000 - 1000 / 1.2) / 1000)
    assert rate.regressed
    assert not by["memory.peak_bytes"].regressed
    assert not result.ok


def test_the_same_slowdown_inside_the_runs_noise_passes():
    # 2 ms worse, but 2 * (0.6 + 0.6) = 2.4 ms of noise: the bands overlap.
    result = compare(run(12.0, 0.6), run(10.0, 0.6), "base.json", max_regression_pct=10)
    time = changes(result)["throughput.iteration_ms"]
    assert time.change_pct == pytest.approx(20.0) and not time.regressed
    assert result.ok


def test_a_slowdown_outside_the_noise_but_within_the_allowance_passes():
    result = compare(run(10.5, 0.01), run(10.0, 0.01), "base.json", max_regression_pct=10)
    assert changes(result)["throughput.iteration_ms"].change_pct == pytest.approx(5.0)
    assert result.ok


def test_improvements_never_fail_and_peak_memory_has_no_noise():
    faster = compare(run(5.0, 0.01, peak_bytes=500_000), run(10.0, 0.01), "base.json", max_regression_pct=0)
    assert faster.ok
    assert changes(faster)["throughput.iteration_ms"].change_pct == pytest.approx(-50.0)
    bigger = compare(run(10.0, 0.01, peak_bytes=1_300_000), run(10.0, 0.01), "base.json", max_regression_pct=25)
    peak = changes(bigger)["memory.peak_bytes"]
    assert (peak.change_pct, peak.noise, peak.regressed) == (pytest.approx(30.0), 0.0, True)
    assert not bigger.ok


def test_baseline_files_are_read_and_refused_with_a_reason(tmp_path):
    good = tmp_path / "base.json"
    good.write_text(run(10.0, 0.1).to_json())
    assert load_baseline(str(good)).throughput.iteration_ms == 10.0
    with pytest.raises(BaselineError, match="cannot read baseline"):
        load_baseline(str(tmp_path / "missing.json"))
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(BaselineError, match="not a skyline-tui report"):
        load_baseline(str(tmp_path / "junk.json"))
    failed = tmp_path / "failed.json"
    failed.write_text(Report(entry_point="e.py", project_root="").to_json())
    with pytest.raises(BaselineError, match="neither throughput nor memory"):
        load_baseline(str(failed))


def test_a_run_id_is_read_back_from_a_real_history_store(tmp_path):
    store = tmp_path / "history.db"
    with History(store) as history:
        history.record(run(10.0, 0.1))
        run_id = history.record(run(25.0, 0.2, peak_bytes=7))
    baseline = load_baseline(str(run_id), store)
    assert (baseline.throughput.iteration_ms, baseline.memory.peak_bytes) == (25.0, 7)
    with pytest.raises(BaselineError, match=f"no run {run_id + 1}"):
        load_baseline(str(run_id + 1), store)
    with pytest.raises(BaselineError, match="no history store at"):
        load_baseline("1", tmp_path / "elsewhere.db")
    with pytest.raises(BaselineError, match="the history is turned off"):
        load_baseline("1", None)
