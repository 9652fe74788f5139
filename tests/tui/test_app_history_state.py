"""The history's part of the app state, without the app: a recorded run's comparison, the pinned baseline,
a past run shown in place of the live one, and what takes the screen back to the live run.

The reports are the MLP fixture (3,413.3 samples/s, 18.75 ms) and, made by hand, a slower earlier run of
the same entry and batch size (2,560 samples/s, 25 ms): the live run is 3,413.3 / 2,560 - 1 = +33.3 %.
"""

from __future__ import annotations

import pytest
from app_support import load_report

from skyline_tui.comparison.changes import compare_runs
from skyline_tui.report import Throughput
from skyline_tui.tui import state as transitions
from skyline_tui.tui.state import AppState, comparison_label, on_screen, past_run_title, shown_comparison

CURRENT = load_report("mlp_cpu")  # created 2025-01-15T10:42:07Z
ERROR = load_report("mlp_error")  # the same entry, failed, created 10:43:12
BASELINE = CURRENT.replace(created_at="2025-01-14T09:00:00Z",
                           throughput=Throughput(samples_per_second=2560.0, iteration_ms=25.0,
                                                 iteration_ms_stdev=0.62, iterations_measured=24))


def live_run() -> AppState:
    """The MLP run as run 1 of this app, finished."""
    return transitions.report_received(transitions.run_started(AppState(), 1, now=0.0), 1, CURRENT,
                                       final=True, at="10:42:07")


def recorded(state: AppState, run_id: int = 2) -> AppState:
    """The live run recorded as ``run_id`` and compared with the baseline, recorded before as run 1."""
    return transitions.run_recorded(state, CURRENT, run_id, compare_runs(BASELINE, CURRENT, 1))


def test_a_recorded_run_shows_its_change_against_the_previous_run():
    state = recorded(live_run())
    comparison = shown_comparison(state)
    assert comparison is not None and comparison.throughput is not None
    assert comparison.throughput.percent == pytest.approx(100 * (3413.3 / 2560 - 1))  # +33.3 %
    assert comparison.throughput.text == "▲ 33 % faster"
    assert comparison_label(state) == "previous run #1"
    assert state.history.latest_run == 2


def test_nothing_to_compare_with_says_previous_run_and_shows_no_change():
    state = transitions.run_recorded(live_run(), CURRENT, 1, None)
    assert shown_comparison(state) is None and comparison_label(state) == "previous run"
    assert state.history.latest_run == 1


def test_a_run_the_store_could_not_take_keeps_the_latest_recorded_one():
    state = transitions.run_recorded(recorded(live_run()), CURRENT, None, None)
    assert state.history.latest_run == 2


def test_a_failed_run_hides_the_change_it_does_not_describe():
    state = recorded(live_run())
    state = transitions.report_received(transitions.run_started(state, 2, now=0.0), 2, ERROR, final=True,
                                        at="10:43:12")
    state = transitions.run_recorded(state, ERROR, 3, None)
    assert shown_comparison(state) is None  # the screen now belongs to the 10:43:12 run, which failed
    assert state.history.comparison is not None and state.history.latest_run == 3


def test_a_run_under_way_shows_no_change_until_it_is_compared():
    state = recorded(live_run())
    newer = CURRENT.replace(created_at="2025-01-15T10:50:00Z")
    state = transitions.report_received(transitions.run_started(state, 2, now=0.0), 2, newer, final=False,
                                        at="10:50:00")
    assert shown_comparison(state) is None


def test_pinning_a_baseline_compares_the_live_run_with_it_now():
    state = transitions.run_recorded(live_run(), CURRENT, 2, None)  # no previous run to compare with
    state = transitions.baseline_pinned(state, 1, BASELINE)
    assert state.history.pinned == 1 and comparison_label(state) == "pinned run #1"
    comparison = shown_comparison(state)
    assert comparison is not None and comparison.pinned and comparison.baseline_id == 1
    assert comparison.throughput is not None and comparison.throughput.text == "▲ 33 % faster"


def test_pinning_before_any_report_only_remembers_the_choice():
    state = transitions.baseline_pinned(AppState(), 4, BASELINE)
    assert state.history.pinned == 4 and state.history.comparison is None


def test_a_past_run_is_shown_in_place_of_the_live_one_which_goes_on_underneath():
    state = transitions.past_run_shown(recorded(live_run()), 1, BASELINE)
    screen = on_screen(state)
    assert screen.live.shown is not None and screen.live.shown.throughput == BASELINE.throughput
    assert state.live.shown is not None and state.live.shown.throughput == CURRENT.throughput  # the live run
    assert screen.run.phase is None and screen.current_run == 1  # its sections are its own: none reads "old"
    assert shown_comparison(state) is None  # no Δ on a past run
    assert past_run_title(state) is not None and "PAST RUN #1" in past_run_title(state)
    assert past_run_title(transitions.past_run_left(state)) is None


def test_the_live_run_keeps_arriving_while_a_past_run_is_shown():
    state = transitions.past_run_shown(recorded(live_run()), 1, BASELINE)
    newer = CURRENT.replace(created_at="2025-01-15T10:50:00Z", batch_size=32)
    state = transitions.report_received(state, 1, newer, final=False, at="10:50:00")
    assert on_screen(state).live.shown.throughput == BASELINE.throughput  # still the past run
    assert transitions.past_run_left(state).live.shown.batch_size == 32  # back: the newest live numbers


@pytest.mark.parametrize("back", [
    pytest.param(transitions.past_run_left, id="escape"),
    pytest.param(lambda state: transitions.run_queued(state, b"source"), id="r or a save"),
    pytest.param(lambda state: transitions.run_started(state, 5, now=0.0), id="a run starting"),
])
def test_escape_r_and_a_new_run_take_the_screen_back_to_the_live_run(back):
    state = transitions.past_run_shown(recorded(live_run()), 1, BASELINE)
    live = back(state)
    assert live.history.past is None and on_screen(live).live == state.live
    assert live.history.comparison == state.history.comparison  # the live run's change is still known


def test_the_comparison_gives_each_module_its_change_by_path():
    """fc2 took 1 + 1 ms in the baseline and 3.85 + 7.9 now: 9.75 ms slower; fc3 did not exist; the whole
    model (path "") took the same 16.63 ms."""
    breakdown = CURRENT.breakdown
    assert breakdown is not None
    old_modules = tuple(m.__class__(**{**m.__dict__, "forward_ms": 1.0, "backward_ms": 1.0}) if m.path == "fc2" else m
                        for m in breakdown.modules if m.path != "fc3")
    baseline = BASELINE.replace(breakdown=breakdown.__class__(**{**breakdown.__dict__, "modules": old_modules}))
    comparison = compare_runs(baseline, CURRENT, 1)
    fc2, fc3, model = comparison.module("fc2"), comparison.module("fc3"), comparison.module("")
    assert fc2 is not None and (fc2.delta_ms, fc2.verdict) == (pytest.approx(9.75), "slower")
    assert fc3 is not None and fc3.verdict == "new"
    assert model is not None and (model.delta_ms, model.verdict) == (0.0, "same")
    assert comparison.module("fc9") is None
