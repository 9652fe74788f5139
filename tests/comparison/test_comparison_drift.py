"""The drift between processes, learned from repeated runs of identical source in a real SQLite store, and
the verdicts it gives: two runs of the same source and config differ only by this machine's noise; a change
of source is judged against that noise; with no repeated source yet, a change drift could explain reads
``unknown``.

Reports are made by hand (times chosen) and recorded in a real store; the project is a real folder whose
``entry.py`` is edited between runs, so the store's ``source_hash`` tells the sources apart as it does for a
user.  Every expected number is worked out by hand in the comments.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from skyline_tui.comparison.drift import drift_between, learn_drift, same_source
from skyline_tui.config import ProfileConfig
from skyline_tui.history import History, record_run
from skyline_tui.report import DeviceInfo
from skyline_tui.tui.history_sink import HistorySink

from ..history_support import make_report, run_verb

CONFIG = {"warmup_s": 0.1, "throughput_budget_s": 2.0}


def record(store, project, iteration_ms, *, source="x = 1\n", device=None, config=CONFIG, lines=None):
    (project / "entry.py").write_text(source)
    report = make_report(project, iteration_ms=iteration_ms, stdev=0.01, **({"lines": lines} if lines else {}))
    if device is not None:
        report = report.replace(device=DeviceInfo(type="cpu", name=device, memory_capacity_bytes=None))
    with History(store) as history:
        return history.record(report, config=config)


def diff_json(store, a, b):
    code, out, err = run_verb("diff", str(a), str(b), "--history", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_two_runs_of_the_same_source_and_config_differ_by_noise_only(tmp_path, project):
    # The mlp: unchanged, profiled twice, 2.65 then 3.79 ms.  Before: "slower +43.1 %" on every line.
    store = tmp_path / "h.db"
    first, second = record(store, project, 2.65), record(store, project, 3.79)
    data = diff_json(store, first, second)
    assert data["iteration"]["delta_percent"] == pytest.approx(100 * (3.79 / 2.65 - 1))  # +43.0 %
    assert data["iteration"]["verdict"] == data["throughput"]["verdict"] == "same"
    assert {line["verdict"] for line in data["lines"]} == {"same"}
    assert "same source and config" in data["cautions"][0] and "+43.0 %" in data["cautions"][0]
    # Another config (another budget) is another way to run it: not noise alone.  Nothing ran twice that
    # way, but the first two runs did: the drift is known, and +43 % is within it (see the next test).
    third = record(store, project, 3.79, config={**CONFIG, "throughput_budget_s": 5.0})
    assert not any("same source" in caution for caution in diff_json(store, first, third)["cautions"])


def test_a_change_of_source_is_judged_against_the_drift_learned_from_repeated_runs(tmp_path, project):
    store = tmp_path / "h.db"
    record(store, project, 2.65)
    second = record(store, project, 3.79)
    # Another machine's repeats and a failed run are not this machine's drift.
    record(store, project, 1.0, device="other CPU")
    record(store, project, 9.0, device="other CPU")
    edited = record(store, project, 3.0, source="x = 2\n")
    slower = record(store, project, 12.0, source="x = 3\n")
    # One group of repeats, {2.65, 3.79}: mean 3.22, each 0.57 / 3.22 = 17.70 % from it; pooled over
    # 2 - 1 degrees of freedom: sigma = sqrt(2 * 0.17702**2) = 25.03 %.
    with History(store) as history:
        drift = drift_between(history, second, edited)
    assert (drift.sigma, drift.runs, drift.groups, drift.same_source) == (pytest.approx(0.25034, abs=1e-4), 2, 1,
                                                                           False)
    # 3.79 -> 3.0 ms, each with 0.01 ms of its own: noise 2 * (0.01 + 0.25034 * 3.79 + 0.01 + 0.25034 * 3.0)
    # = 3.4396 ms, 90.8 % of 3.79: a change of 0.79 ms is within it.
    within = diff_json(store, second, edited)
    assert within["noise_fraction"] == pytest.approx(3.4396 / 3.79, abs=1e-3)
    assert within["iteration"]["verdict"] == "same" and within["cautions"] == []
    # 3.0 -> 12.0 ms: noise 2 * (0.02 + 0.25034 * 15) = 7.5502 ms < 9 ms: slower, drift and all.
    beyond = diff_json(store, edited, slower)
    assert beyond["noise_fraction"] == pytest.approx(7.5502 / 12.0, abs=1e-3)
    assert beyond["iteration"]["verdict"] == "slower" and beyond["throughput"]["verdict"] == "slower"


def test_with_no_repeated_source_a_change_drift_could_explain_is_unknown(tmp_path, project):
    store = tmp_path / "h.db"
    first = record(store, project, 2.65)
    # Line 5 took 3.0 ms, now 4.5 (+50 %, within unknown drift); line 6 2.0 then 6.0 (3x: slower whatever it is).
    edited = record(store, project, 3.79, source="x = 2\n", lines=((5, "x = a(x)", 4.5), (6, "x = b(x)", 6.0)))
    doubled = record(store, project, 6.0, source="x = 3\n")
    data = diff_json(store, first, edited)
    # Beyond both runs' own noise (5 % floor) but less than 2x apart, and no source ran twice yet.
    assert data["iteration"]["verdict"] == data["throughput"]["verdict"] == "unknown"
    assert data["peak"]["verdict"] == "same"  # memory does not drift as time does
    assert "drift between processes unknown" in data["cautions"][0]
    assert {line["code"]: line["verdict"] for line in data["lines"]} == {"x = a(x)": "unknown", "x = b(x)": "slower"}
    code, text, err = run_verb("diff", str(first), str(edited), "--history", str(store))
    assert code == 0, err
    assert "unknown" in text.splitlines()[4]  # the iteration's line: "... +43.0 %  unknown"
    assert any(row.startswith("?  entry.py:5") and row.endswith("unknown  x = a(x)")
               for row in text.splitlines()), text
    # 2.65 -> 6.0 ms is 2.26x: more than drift has done here, whatever it is.
    assert diff_json(store, first, doubled)["iteration"]["verdict"] == "slower"


def test_the_apps_change_against_the_previous_run_knows_the_drift_too(tmp_path, project):
    store = tmp_path / "h.db"
    record(store, project, 2.65)
    (project / "entry.py").write_text("x = 1\n")
    again = make_report(project, iteration_ms=3.79, stdev=0.01)
    recorded = HistorySink(store).record(again, config=CONFIG)
    assert recorded.comparison is not None and recorded.comparison.throughput is not None
    assert recorded.comparison.throughput.verdict == "same"  # the same source and config: noise
    (project / "entry.py").write_text("x = 2\n")
    edited = dataclasses.replace(again, created_at="2025-01-01T00:01:00Z")
    changed = HistorySink(store).record(edited, config=CONFIG)
    # The previous run (3.79, same time) is the baseline: 0 %.  Against run 1 (2.65 -> 3.79) pinned, the drift
    # learned from runs 1 and 2 (17.70 % from their mean) and 3 and 4 (0 %) pooled, sqrt((2 * 0.17702**2 + 0)
    # / 2) = 17.70 %, allows 2 * (0.02 + 0.1770 * (2.65 + 3.79)) = 2.32 ms: +1.14 ms is within it.
    assert changed.comparison is not None and changed.comparison.throughput.verdict == "same"
    pinned = HistorySink(store).record(edited, config=CONFIG, pinned=1)
    assert pinned.comparison is not None and pinned.comparison.throughput.verdict == "same"
    assert pinned.comparison.throughput.percent == pytest.approx(100 * (2.65 / 3.79 - 1))


def test_a_baseline_run_of_the_store_counts_the_drift_learned_there(tmp_path, project):
    from skyline_tui.checks import prepare_checks
    from skyline_tui.config import ProfileConfig

    store = tmp_path / "h.db"
    first = record(store, project, 2.65)
    record(store, project, 3.79)
    current = make_report(project, iteration_ms=3.79, stdev=0.01)
    checks = prepare_checks(ProfileConfig(), baseline=str(first), history_path=store)
    time = {c.metric: c for c in checks.apply(current).baseline.changes}["throughput.iteration_ms"]
    # 2.65 -> 3.79 ms is 43 % worse, but within 2 * (0.01 + 0.25034 * 2.65 + 0.01 + 0.25034 * 3.79) = 3.2644 ms.
    assert time.noise == pytest.approx(3.2644, abs=1e-3) and not time.regressed
    # The same baseline as a report file: no store to learn from, the runs' own spreads alone (0.04 ms).
    (tmp_path / "base.json").write_text(make_report(project, iteration_ms=2.65, stdev=0.01).to_json())
    checks = prepare_checks(ProfileConfig(), baseline=str(tmp_path / "base.json"), history_path=store)
    time = {c.metric: c for c in checks.apply(current).baseline.changes}["throughput.iteration_ms"]
    assert time.noise == pytest.approx(0.04) and time.regressed


def test_the_drift_of_any_figure_a_run_records_is_learned_alike():
    # A training run's final loss, say: sources "s" (2.0, 2.2) and "t" (1.0, 1.0, 1.3); a failed run and
    # another machine's run left out.  Means 2.1 and 1.1; squared relative deviations 2 * (0.1 / 2.1)**2 =
    # 0.0045351 and 2 * (0.1 / 1.1)**2 + (0.2 / 1.1)**2 = 0.0495868; over 1 + 2 degrees of freedom:
    # sigma = sqrt(0.0541219 / 3) = 0.13432.
    def row(source, loss, device="cpu", error=None):
        return {"source_hash": source, "config": None, "batch_size": 8, "device": device, "error_kind": error,
                "final_loss": loss}

    rows = [row("s", 2.0), row("s", 2.2), row("t", 1.0), row("t", 1.0), row("t", 1.3), row("t", 9.0, error="nan"),
            row("t", 5.0, device="gpu")]
    drift = learn_drift(rows, "cpu", figure="final_loss")
    assert (drift.sigma, drift.runs, drift.groups) == (pytest.approx(0.13432, abs=1e-5), 5, 2)
    assert learn_drift(rows[:1] + rows[2:3], "cpu", figure="final_loss").sigma is None  # nothing ran twice


def test_the_drift_a_run_was_judged_with_is_no_part_of_how_it_ran(tmp_path, project):
    # Three runs of one source, config and batch, recorded as a profile is (record_run, its ProfileConfig):
    # the first before anything was learned, the next two with the drift a front door looked up passed in
    # (ProfileConfig.drift_sigma/drift_device).  They ran the same code the same way: one group of three.
    store = tmp_path / "h.db"
    (project / "entry.py").write_text("x = 1\n")
    base = ProfileConfig()
    for ms, config in ((10.0, base), (11.0, base.replace(drift_sigma=0.02, drift_device="CPU (test)")),
                       (12.0, base.replace(drift_sigma=0.05, drift_device="CPU (test)"))):
        assert record_run(make_report(project, iteration_ms=ms, stdev=0.01), store, config=config.to_dict())
    with History(store) as history:
        rows = history.runs()
    # {10, 11, 12}: mean 11, deviations -1/11, 0 and 1/11; (2/121) / (3 - 1) = 1/121: sigma = 1/11 = 9.09 %.
    drift = learn_drift(rows, "CPU (test)")
    assert (drift.sigma, drift.runs, drift.groups) == (pytest.approx(1 / 11), 3, 1)
    assert same_source(rows[0], rows[2])
    # A budget is how it ran: another group (a run of its own: nothing repeated).
    assert not same_source(rows[0], {**rows[0], "config": {**rows[0]["config"], "throughput_budget_s": 5.0}})
