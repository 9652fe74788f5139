"""The script sweep's table pieces that compute: the sparkline, the ranking, a metric's best."""

from __future__ import annotations

import math

from skyline_tui.sweep.script_spec import ScriptTrial
from skyline_tui.sweep.script_table import ranked, sparkline
from skyline_tui.sweep.script_trials import TrialState, best_of


def test_a_sparkline_scales_the_last_values_between_their_own_min_and_max():
    assert sparkline([0.0, 7.0, 3.5, 1.0]) == "▁█▅▂"  # level round(v / 7 * 7): 0, 7, 4 (half to even), 1
    assert sparkline([2.0, 2.0]) == "▁▁"
    assert sparkline([1.0, math.nan, 3.0]) == "▁ █"
    assert sparkline([float(v) for v in range(30)], width=4) == "▁▃▆█"  # the last 4: 26..29
    assert sparkline([]) == "" and sparkline([math.nan]) == ""


def test_best_and_ranking_follow_the_mode_and_put_failed_trials_last():
    assert best_of([3.0, math.nan, 1.0, 2.0], "min") == 1.0 and best_of([3.0, 1.0], "max") == 3.0
    assert math.isnan(best_of([math.nan], "min"))
    states = []
    for index, (status, losses) in enumerate([("ok", [0.9, 0.5]), ("failed", [0.1]), ("ok", [0.4, 0.6]),
                                              ("ok", [])]):
        state = TrialState(ScriptTrial(index=index, knobs={"i": index}, argv=()), status=status)
        state.series = {"loss": losses} if losses else {}
        states.append(state)
    assert [s.trial.index for s in ranked(states, "loss", "min")] == [2, 0, 1, 3]
    assert [s.trial.index for s in ranked(states, "loss", "max")] == [0, 2, 1, 3]


def test_progress_from_a_ray_task_extends_the_trial_until_its_result_arrives():
    from skyline_tui.sweep.script_ray import apply_progress

    state = TrialState(ScriptTrial(index=0, knobs={}, argv=()), status="running")
    states = {0: state}
    apply_progress(states, {"index": 0, "steps": 2, "recent": [[8, 4.0]], "series": {"loss": [0.9, 0.8]}})
    apply_progress(states, {"index": 0, "steps": 3, "recent": [[8, 4.0], [8, 2.0]], "series": {"loss": [0.7]}})
    apply_progress(states, {"index": 5, "steps": 9, "recent": [], "series": {"loss": [0.1]}})  # not ours
    assert state.steps == 3 and state.series == {"loss": [0.9, 0.8, 0.7]}
    assert state.samples_per_second == 16 * 1000.0 / 6.0  # 16 samples over 6 ms of the recent steps
