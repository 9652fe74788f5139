"""The app's state transitions, without the app: each event of a run as the status bar and panes see it."""

from __future__ import annotations

from app_support import load_report

from skyline_tui.report import ErrorInfo
from skyline_tui.tui import state as transitions
from skyline_tui.tui.state import AppState

MLP = load_report("mlp_cpu")
MLP_ERROR = load_report("mlp_error")


def test_a_run_goes_from_queued_through_its_phases_to_idle():
    state = transitions.run_queued(AppState(), b"source")
    assert (state.run.phase, state.profiled_source) == ("queued", b"source")
    state = transitions.run_started(transitions.run_submitted(state, 1), 1, now=5.0)
    assert (state.current_run, state.run.phase, state.run.started_at) == (1, "starting", 5.0)
    state = transitions.run_progressed(state, 1, "memory")
    assert state.run.phase == "memory"
    state = transitions.report_received(state, 1, MLP, final=False, at="10:00:00")
    assert state.run.phase == "memory" and state.live.shown is not None  # partial: still running
    state = transitions.report_received(state, 1, MLP, final=True, at="10:00:01")
    assert (state.run.phase, state.run.last_report_at, state.run.failed) == (None, "10:00:01", False)


def test_an_older_run_submitted_late_does_not_become_current():
    state = transitions.run_submitted(transitions.run_submitted(AppState(), 2), 1)
    assert state.current_run == 2


def test_the_profiler_ending_keeps_the_error_its_run_already_reported():
    state = transitions.run_started(AppState(), 1, now=0.0)
    state = transitions.report_received(state, 1, MLP_ERROR, final=True, at="10:00:00")
    gone = transitions.profiler_gone(state, "exit code 1")
    assert gone.live.error == MLP_ERROR.error  # the precise one (entry.py:20), not "the process ended"
    assert gone.run.profiler_ended and gone.run.failed


def test_the_profiler_ending_mid_run_fails_that_run():
    state = transitions.report_received(AppState(), 1, MLP, final=True, at="10:00:00")
    state = transitions.run_progressed(transitions.run_started(state, 2, now=0.0), 2, "throughput")
    gone = transitions.profiler_gone(state, "killed")
    assert gone.live.error is not None and gone.live.error.kind == "crash" and gone.run.failed
    assert gone.live.shown == state.live.shown  # the last good numbers stay


def test_a_failure_without_a_report_keeps_what_is_shown():
    state = transitions.report_received(AppState(), 1, MLP, final=True, at="10:00:00")
    failed = transitions.run_failed(state, ErrorInfo("internal", "no python"))
    assert failed.live.shown == state.live.shown and failed.run.failed and failed.live.error.message == "no python"


def test_view_choices_are_fields_of_the_state():
    state = transitions.breakdown_toggled(AppState())
    assert state.breakdown_by == "module" and transitions.breakdown_toggled(state).breakdown_by == "line"
    assert transitions.target_set(state, 128).target_batch_size == 128
    assert transitions.modules_expanded(state, frozenset({""})).expanded_modules == {""}
    assert transitions.save_seen(transitions.save_seen(state)).saves_seen == 2
