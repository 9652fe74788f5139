"""Diffs between two runs: line identity across inserted and edited lines, verdicts judged against the
noise of both runs, and the JSON shape of ``skyline-tui diff --json``."""

from __future__ import annotations

import dataclasses
import json

import pytest

from skyline_tui.history import History
from skyline_tui.comparison.diff import diff_reports

from ..history_support import make_report, run_verb


def by_code(diff):
    return {change.code: change for change in diff.lines}


def test_a_line_keeps_its_identity_when_lines_are_inserted_above_it(tmp_path):
    before = make_report(tmp_path, lines=((5, "x = a(x)", 3.0), (6, "x = b(x)", 2.0), (9, "x = d(x)", 1.0)))
    # Two lines inserted above line 5: a and b move down by two; b doubled; d was deleted; c is new.
    after = make_report(tmp_path, lines=((5, "x = c(x)", 1.0), (7, "x = a(x)", 3.0), (8, "x = b(x)", 4.0)))
    changes = by_code(diff_reports(before, after))
    assert (changes["x = a(x)"].before_line, changes["x = a(x)"].line) == (5, 7)
    assert changes["x = a(x)"].verdict == "same" and changes["x = a(x)"].delta_ms == 0.0
    assert changes["x = b(x)"].verdict == "slower" and changes["x = b(x)"].delta_ms == pytest.approx(2.0)
    assert (changes["x = c(x)"].verdict, changes["x = c(x)"].before_ms) == ("new", None)
    assert (changes["x = d(x)"].verdict, changes["x = d(x)"].after_ms) == ("gone", None)


def test_an_edited_line_is_matched_where_the_shift_around_it_puts_it(tmp_path):
    before = make_report(tmp_path, lines=((5, "x = a(x)", 3.0), (6, "x = relu(x)", 2.0), (7, "x = b(x)", 1.0)))
    after = make_report(tmp_path, lines=((1, "import y", 0.5), (6, "x = a(x)", 3.0), (7, "x = gelu(x)", 1.0),
                                         (8, "x = b(x)", 1.0)))
    changes = by_code(diff_reports(before, after))
    edited = changes["x = gelu(x)"]
    assert (edited.before_line, edited.line, edited.before_ms, edited.verdict) == (6, 7, 2.0, "faster")
    assert changes["import y"].verdict == "new" and "x = relu(x)" not in changes


def test_repeated_code_pairs_with_the_nearest_line(tmp_path):
    before = make_report(tmp_path, lines=((10, "x = block(x)", 1.0), (20, "x = block(x)", 5.0)))
    after = make_report(tmp_path, lines=((12, "x = block(x)", 1.0), (22, "x = block(x)", 5.0)))
    assert {(c.before_line, c.line, c.verdict) for c in diff_reports(before, after).lines} == {
        (10, 12, "same"), (20, 22, "same")}


def test_same_means_within_the_noise_of_both_runs(tmp_path):
    quiet = {"stdev": 0.05}  # 0.5 % spread: the 5 % floor rules, so 3.0 -> 3.3 ms (+10 %) is slower
    noisy = {"stdev": 1.0}  # 10 % spread on a 10 ms iteration: 2 sigma = 20 %, so +10 % is noise
    for spread, verdict in ((quiet, "slower"), (noisy, "same")):
        before = make_report(tmp_path, lines=((5, "x = a(x)", 3.0),), **spread)
        after = make_report(tmp_path, lines=((5, "x = a(x)", 3.3),), stdev=0.05)
        assert diff_reports(before, after).lines[0].verdict == verdict


def test_throughput_iteration_and_peak_before_and_after(tmp_path):
    before = make_report(tmp_path, iteration_ms=10.0, batch_size=8, peak_bytes=1000)
    after = make_report(tmp_path, iteration_ms=12.5, batch_size=8, peak_bytes=2000)
    result = diff_reports(before, after)
    # 8 samples per 10 ms = 800/s, per 12.5 ms = 640/s: 20 % fewer.
    assert result.throughput["before"] == pytest.approx(800.0) and result.throughput["after"] == pytest.approx(640.0)
    assert result.throughput["delta_percent"] == pytest.approx(-20.0) and result.throughput["verdict"] == "slower"
    assert result.iteration["verdict"] == "slower" and result.peak == {
        "before": 1000, "after": 2000, "delta": 1000, "delta_percent": 100.0, "verdict": "more"}


def test_modules_are_matched_by_path(tmp_path):
    before = make_report(tmp_path, modules=(("", 5.0), ("fc", 4.0), ("old", 1.0)))
    after = make_report(tmp_path, modules=(("", 5.0), ("fc", 2.0), ("new", 1.0)))
    verdicts = {c.module: (c.before_ms, c.after_ms, c.verdict) for c in diff_reports(before, after).modules}
    assert verdicts == {"": (5.0, 5.0, "same"), "fc": (4.0, 2.0, "faster"), "old": (1.0, None, "gone"),
                        "new": (None, 1.0, "new")}


def run_diff(*argv: str) -> tuple[int, str, str]:
    return run_verb("diff", *argv)


def test_diff_json_between_report_files_has_the_documented_shape(tmp_path):
    (tmp_path / "a.json").write_text(make_report(tmp_path, lines=((5, "x = a(x)", 3.0),)).to_json())
    (tmp_path / "b.json").write_text(make_report(tmp_path, lines=((6, "x = a(x)", 6.0),)).to_json())
    code, out, err = run_diff(str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"a", "b", "throughput", "peak", "lines", "modules"} <= set(data)
    assert data["lines"] == [{"file": "entry.py", "line": 6, "code": "x = a(x)", "before_ms": 3.0, "after_ms": 6.0,
                              "delta_ms": 3.0, "verdict": "slower"}]
    assert set(data["modules"][0]) == {"module", "before_ms", "after_ms", "delta_ms", "verdict"}


def test_diff_with_no_runs_named_compares_the_last_two_of_the_newest_entry(tmp_path):
    store = tmp_path / "h.db"
    with History(store) as history:
        history.record(make_report(tmp_path, entry="a.py", iteration_ms=10.0))
        history.record(make_report(tmp_path, entry="a.py", iteration_ms=20.0))
        history.record(make_report(tmp_path, entry="b.py", iteration_ms=30.0))
        history.record(make_report(tmp_path, entry="a.py", iteration_ms=40.0))
    code, out, err = run_diff("--history", str(store), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["a"]["id"], data["b"]["id"]) == (2, 4)
    assert (data["iteration"]["before"], data["iteration"]["after"]) == (20.0, 40.0)
    code, out, _ = run_diff("3", "--history", str(store))  # one run: against the newest other run of b.py
    assert code == 1  # b.py has no second run


def test_diff_of_a_missing_file_or_run_is_one_clear_line(tmp_path):
    code, _out, err = run_diff(str(tmp_path / "nope.json"), "1", "--history", str(tmp_path / "none.db"))
    assert code == 1 and err.count("\n") == 1 and "nope.json" in err
    with History(tmp_path / "h.db") as history:
        history.record(make_report(tmp_path))
    code, _out, err = run_diff("1", "7", "--history", str(tmp_path / "h.db"))
    assert code == 1 and err.strip() == f"skyline-tui: no run 7 in {tmp_path / 'h.db'}"


def _with(report, **throughput):
    return report.replace(throughput=dataclasses.replace(report.throughput, **throughput))


def test_a_diff_says_when_the_allocator_or_a_busy_cpu_may_have_made_the_change(tmp_path):
    # The lstm sample's two runs of one unchanged file: 11.2 ms with ~5.3 ms of page faults, then 5.0 ms with
    # none.  The verdict stays "faster" (the time did change), with a caution naming the allocator.
    faulting = _with(make_report(tmp_path, iteration_ms=11.2), page_faults_per_iteration=3622.0, page_fault_ms=5.3)
    steady = _with(make_report(tmp_path, iteration_ms=5.0), page_faults_per_iteration=9.0, page_fault_ms=0.01)
    diff = diff_reports(faulting, steady)
    assert diff.iteration["verdict"] == "faster"
    assert len(diff.cautions) == 1 and "about 5.3 ms of A's iteration and 0.0 ms of B's" in diff.cautions[0]
    # Alike faults (within a tenth of the iteration), not counted (older reports), or a quiet CPU: no caution.
    alike = _with(make_report(tmp_path, iteration_ms=10.0), page_faults_per_iteration=3000.0, page_fault_ms=4.5)
    assert diff_reports(faulting, alike).cautions == ()
    assert diff_reports(make_report(tmp_path), steady).cautions == ()
    busy = _with(make_report(tmp_path, iteration_ms=186.6), cpu_contention=0.81)
    assert [c[:36] for c in diff_reports(busy, steady).cautions] == ["A was measured on a busy CPU (other "]
    (tmp_path / "a.json").write_text(faulting.to_json())
    (tmp_path / "b.json").write_text(steady.to_json())
    code, out, err = run_diff(str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert code == 0 and "caution: page faults took about 5.3 ms" in out, (out, err)
    code, out, err = run_diff(str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    assert json.loads(out)["cautions"] == list(diff.cautions)


def test_a_diff_says_when_the_throughput_changed_but_the_breakdown_did_not(tmp_path):
    # Two runs of the lstm sample, one unchanged file: the throughput read 9.28 then 15.27 ms, the breakdown's
    # profiled iteration 6.58 then 6.26 ms (every line the same).  Two timings of one run that disagree.
    before = make_report(tmp_path, iteration_ms=9.28)
    after = _with(make_report(tmp_path, iteration_ms=15.27), samples_per_second=8 * 1000 / 15.27)
    before = before.replace(breakdown=dataclasses.replace(before.breakdown, profiled_iteration_ms=6.58))
    after = after.replace(breakdown=dataclasses.replace(after.breakdown, profiled_iteration_ms=6.26))
    diff = diff_reports(before, after)
    assert diff.iteration["verdict"] == "slower"  # the measured time did change: the verdict says so
    assert len(diff.cautions) == 1 and "from 9.28 to 15.27 ms but the breakdown's profiled iteration did not " \
        "(6.58 and 6.26 ms)" in diff.cautions[0], diff.cautions
    # A change both timings saw (the code's), or no breakdown to compare: no caution.
    slower_code = after.replace(breakdown=dataclasses.replace(after.breakdown, profiled_iteration_ms=11.0))
    assert diff_reports(before, slower_code).cautions == ()
    assert diff_reports(before, after.replace(breakdown=None)).cautions == ()
