"""Health flags across runs: ``skyline-tui diff`` (JSON and text) lists the flags that appeared or went away
between two runs recorded in a real SQLite store, and the app's Health pane marks a flag the previous run
did not raise.  The health sections are written by hand, so each expected change is known in advance."""

from __future__ import annotations

import json

from app_support import MLP_ENTRY, finished, load_report, make_app, text_of, wait_until
from history_support import make_report, run_verb

from skyline_tui.history import History
from skyline_tui.comparison.changes import compare_runs
from skyline_tui.comparison.diff import diff_reports
from skyline_tui.report import Health, HealthFlag, MetricSeries, ModuleHealth
from skyline_tui.tui.health_rows import health_rows

RATIO = {"update_to_weight": MetricSeries(last=1e-3, median=1e-3, series=(1e-3,))}


def health(*flagged: tuple[str, str]) -> Health:
    """Modules fc1, fc2, fc3; ``flagged`` lists (module, flag kind)."""
    return Health(iterations=1, modules=tuple(
        ModuleHealth(name, "Linear", "entry.py", 10 + i, RATIO,
                     tuple(HealthFlag(kind, f"{kind} on {name}") for module, kind in flagged if module == name))
        for i, name in enumerate(("fc1", "fc2", "fc3"))))


# Before: fc1 has dead units, fc2 a too-high update ratio.  After: fc2 still does; fc1 is fine again;
# fc3 lost its gradient and fc2 got dead units too.
BEFORE = health(("fc1", "dead_units"), ("fc2", "update_ratio_high"))
AFTER = health(("fc2", "update_ratio_high"), ("fc2", "dead_units"), ("fc3", "no_gradient"))
EXPECTED = [{"module": "fc2", "kind": "dead_units", "change": "appeared"},
            {"module": "fc3", "kind": "no_gradient", "change": "appeared"},
            {"module": "fc1", "kind": "dead_units", "change": "gone"}]


def test_flags_that_appeared_or_went_away_are_matched_by_module_and_kind(tmp_path):
    before, after = make_report(tmp_path).replace(health=BEFORE), make_report(tmp_path).replace(health=AFTER)
    assert [c.to_dict() for c in diff_reports(before, after).flags] == EXPECTED
    assert diff_reports(after, after).flags == ()
    # A run without the health phase (--no-health) compares no flags, rather than calling them all gone.
    assert diff_reports(before, make_report(tmp_path)).flags == ()


def test_diff_of_two_stored_runs_lists_the_flag_changes_in_json_and_text(tmp_path):
    store = tmp_path / "history.db"
    with History(store) as history:
        history.record(make_report(tmp_path, created_at="2025-01-01T00:00:00Z").replace(health=BEFORE))
        history.record(make_report(tmp_path, created_at="2025-01-02T00:00:00Z").replace(health=AFTER))
    code, out, err = run_verb("diff", "1", "2", "--history", str(store), "--json")
    assert code == 0, err
    assert json.loads(out)["flags"] == EXPECTED
    code, text, err = run_verb("diff", "1", "2", "--history", str(store))
    assert code == 0, err
    section = text[text.index("health flags"):].splitlines()
    assert section[2].split()[:4] == ["+", "fc2", "dead_units", "appeared"]
    assert section[3].split()[:4] == ["+", "fc3", "no_gradient", "appeared"]
    assert section[4].split()[:4] == ["-", "fc1", "dead_units", "gone"]
    assert "no_gradient on fc3" in section[3]  # the flag's own explanation


def test_the_health_rows_mark_the_flags_new_since_the_baseline(tmp_path):
    comparison = compare_runs(make_report(tmp_path).replace(health=BEFORE), make_report(tmp_path).replace(health=AFTER))
    rows = {row.module: row for row in health_rows(AFTER, comparison=comparison)}
    assert rows["fc2"].flags == ("update_ratio_high", "dead_units") and rows["fc2"].new_flags == ("dead_units",)
    assert rows["fc3"].new_flags == ("no_gradient",) and rows["fc1"].new_flags == ()
    assert health_rows(AFTER)[0].new_flags == ()  # no history: nothing is marked


async def test_the_pane_marks_a_flag_the_previous_run_did_not_raise(tmp_path):
    from skyline_tui.tui.history_sink import HistorySink
    from skyline_tui.tui.state import shown_comparison
    from skyline_tui.tui.views.health import HealthPane

    current = load_report("mlp_cpu").replace(entry_point=str(MLP_ENTRY), project_root=str(MLP_ENTRY.parent))
    store = tmp_path / "history.db"
    with History(store) as history:
        history.record(current.replace(created_at="2025-01-14T09:00:00Z", health=BEFORE))
    app, _ = make_app([(current.replace(health=AFTER), True)], history=HistorySink(store))
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: finished(app) and shown_comparison(app.state) is not None)
        await pilot.press("H")
        pane = app.query_one(HealthPane)
        await wait_until(pilot, lambda: "+no_gradient" in "\n".join(text_of(w) for w in pane.query("Static")))
        flags = [" ".join(text_of(label).split()) for label in pane.query(".health-flags")]
        # rows: flagged first, costliest first (fc2 55 %, fc3 2 %); fc2's older flag is not marked
        assert flags == ["update_ratio_high +dead_units", "+no_gradient", "ok"]
