"""What the panes show while runs stream in: the newest value of every section, and where it came from.

A run sends partial reports (throughput first, breakdown later...) and may fail half-way.  The panes keep
the last good value of each section until a newer run replaces it, so a failed or half-finished run never
blanks the screen; ``section_runs`` records which run each section came from, so a pane can say it is
showing an older run.

:class:`AppState` is the app's one state: the :class:`LiveState`, the run under way (:class:`RunState`),
the target batch size, the breakdown's view, the module tree's open nodes and the history (the change
against a baseline run, the pinned baseline, a past run on screen).  Pure: the app holds one
:class:`AppState`, replaces it through the transition functions below on every event and key, and
re-renders from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from skyline_tui.comparison.changes import RunComparison, compare_runs
from skyline_tui.report import SECTIONS, ErrorInfo, Report
from skyline_tui.tui.table_rows import ROW_LINE, ROW_MODULE

PREVIOUS_RUN = "previous run"
FIT_FROM_PREVIOUS_RUN = "fit from previous run"
PAST_RUN = "past run"  # a pane showing a run from the history: "past run #3"


@dataclass(frozen=True)
class LiveState:
    shown: Optional[Report] = None  # every section at its newest value; they may come from different runs
    section_runs: tuple[tuple[str, int], ...] = ()  # (section, run id) for the sections in ``shown``
    error: Optional[ErrorInfo] = None  # the newest run's error, if it failed
    error_run: Optional[int] = None
    reports_received: int = field(default=0)

    def run_of(self, section: str) -> Optional[int]:
        return dict(self.section_runs).get(section)


def freshness_note(state: LiveState, section: str, current_run: Optional[int], running: bool) -> Optional[str]:
    """What a pane's title says about ``section``: None (from the current run), 'previous run',
    'measuring…' (nothing yet, a run is on) or 'not measured'."""
    if state.shown is None or getattr(state.shown, section) is None:
        return "measuring…" if running else "not measured"
    run = state.run_of(section)
    if run is None or current_run is None or run == current_run:
        return None
    return PREVIOUS_RUN


def pane_note(state: LiveState, section: str, current_run: Optional[int], running: bool,
              shows_fit: bool = False) -> Optional[str]:
    """The title note of a pane that shows ``section`` and, where ``shows_fit``, numbers from the fits.

    A new run measures throughput and memory before it fits the predictions, so for a while a pane's own
    numbers are fresh while its predicted rows still come from the previous run: the note says so.
    """
    note = freshness_note(state, section, current_run, running)
    if note is None and shows_fit and predictions_are_old(state, current_run):
        return FIT_FROM_PREVIOUS_RUN
    return note


def predictions_are_old(state: LiveState, current_run: Optional[int]) -> bool:
    """Whether the predictions on screen come from a run before the current one."""
    return freshness_note(state, "predictions", current_run, running=False) == PREVIOUS_RUN


def apply_report(state: LiveState, run_id: int, report: Report) -> LiveState:
    """Fold one report of run ``run_id`` into the state (reports of older runs must be dropped before)."""
    runs = dict(state.section_runs)
    shown = state.shown
    changes: dict[str, object] = {}
    for section in SECTIONS:
        value = getattr(report, section)
        if value is not None:
            changes[section] = value
            runs[section] = run_id
    # The profiled batch size belongs with the throughput it was measured at; a partial report of a new
    # run at another batch size must not relabel the old throughput.
    if report.throughput is not None or shown is None:
        changes["batch_size"] = report.batch_size
    if report.device is not None:
        changes["device"] = report.device
    changes["error"] = None
    if shown is None:
        shown = report.replace(**changes)
    else:
        shown = shown.replace(
            entry_point=report.entry_point, project_root=report.project_root, created_at=report.created_at, **changes
        )
    if report.error is not None:
        error, error_run = report.error, run_id
    elif state.error_run is not None and run_id > state.error_run:
        error, error_run = None, None  # a newer run got past the failure
    else:
        error, error_run = state.error, state.error_run
    return replace(
        state,
        shown=shown,
        section_runs=tuple(sorted(runs.items())),
        error=error,
        error_run=error_run,
        reports_received=state.reports_received + 1,
    )


def fail_run(state: LiveState, run_id: Optional[int], error: ErrorInfo) -> LiveState:
    """The worker itself went away: an error without a report; everything shown stays."""
    return replace(state, error=error, error_run=run_id if run_id is not None else state.error_run or 0)


# ---- the app's state: one frozen value, replaced by pure transitions ------------------------------------


@dataclass(frozen=True)
class RunState:
    """What the profiler is doing, as the status bar tells it."""

    phase: Optional[str] = None  # None: idle; "queued", "starting" or one of PHASES while a run is on
    run_id: Optional[int] = None
    last_report_at: Optional[str] = None  # already formatted (the app owns the clock)
    failed: bool = False  # the last run ended in an error
    profiler_ended: bool = False  # the profiler process is gone (until r or a save starts it again)
    started_at: Optional[float] = None  # monotonic seconds when the run under way started


@dataclass(frozen=True)
class PastRun:
    """A run from the history store shown in the panes instead of the live one (enter on the h screen)."""

    run_id: int  # its id in the store
    live: LiveState  # its report, folded as if it had just arrived
    created_at: Optional[str] = None


@dataclass(frozen=True)
class HistoryState:
    """The history's part of the screen: the live run's change against its baseline, the baseline the user
    pinned, the newest run this app recorded, and a past run shown instead of the live one."""

    comparison: Optional[RunComparison] = None  # the newest finished run against its baseline
    compared: Optional[tuple[str, Optional[str]]] = None  # (entry point, created_at) of the run compared
    pinned: Optional[int] = None  # the run the Δ compares with (b on the h screen); None: the previous run
    latest_run: Optional[int] = None  # the newest run recorded by this app: what `d` diffs against
    past: Optional[PastRun] = None


@dataclass(frozen=True)
class AppState:
    """Everything the screen shows, in one place: the app holds one and re-renders from it.

    One field per concern, so a new pane (health, history) adds its own field and transitions beside these.
    """

    live: LiveState = LiveState()  # the reports, section by section
    run: RunState = RunState()  # the run under way, for the status bar
    current_run: Optional[int] = None  # the newest run asked for; older runs' events are dropped
    target_batch_size: Optional[int] = None  # None: the profiled batch size
    breakdown_by: str = ROW_LINE
    expanded_modules: Optional[frozenset[str]] = None  # the module tree's open nodes; None: what fits
    profile_on_save: bool = False
    saves_seen: int = 0  # settled bursts of saves that asked for a profile
    profiled_source: Optional[bytes] = None  # the entry point's bytes when last profiled: what `w` may rewrite
    history: HistoryState = HistoryState()


def run_queued(state: AppState, profiled_source: Optional[bytes]) -> AppState:
    """A profile was asked for (r, a save, a written batch size): a past run on screen gives way to it."""
    return replace(past_run_left(state),
                   run=replace(state.run, phase="queued", run_id=state.current_run, profiler_ended=False),
                   profiled_source=profiled_source)


def run_submitted(state: AppState, run_id: int) -> AppState:
    if state.current_run is not None and run_id <= state.current_run:
        return state
    return replace(state, current_run=run_id)


def run_started(state: AppState, run_id: int, now: float) -> AppState:
    run = RunState("starting", run_id, state.run.last_report_at, state.run.failed, started_at=now)
    return replace(past_run_left(state), current_run=run_id, run=run)


def run_progressed(state: AppState, run_id: int, phase: str) -> AppState:
    return replace(state, current_run=run_id, run=replace(state.run, phase=phase, run_id=run_id))


def report_received(state: AppState, run_id: int, report: Report, final: bool, at: str) -> AppState:
    """A run's partial (``final`` False) or last report; ``at`` is the time it arrived, formatted."""
    failed = report.error is not None
    run = RunState(None if final else state.run.phase, run_id, at, failed,
                   started_at=None if final else state.run.started_at)
    return replace(state, live=apply_report(state.live, run_id, report), current_run=run_id, run=run)


def run_failed(state: AppState, error: ErrorInfo) -> AppState:
    """The profiler could not be started or asked: an error without a report."""
    return replace(state, live=fail_run(state.live, state.current_run, error),
                   run=RunState(None, state.current_run, state.run.last_report_at, failed=True))


def profiler_gone(state: AppState, message: str) -> AppState:
    """The worker process ended.  A run under way fails with it; an idle worker's last run stands, and an
    error its run already reported is not replaced by this less precise one."""
    failed = state.run.failed or state.run.phase is not None
    run = RunState(None, state.current_run, state.run.last_report_at, failed, profiler_ended=True)
    live = state.live
    if live.error is None or live.error_run != state.current_run:
        live = fail_run(live, state.current_run,
                        ErrorInfo("crash", f"the profiler process ended ({message}); r starts it again"))
    return replace(state, live=live, run=run)


def target_set(state: AppState, batch_size: Optional[int]) -> AppState:
    return replace(state, target_batch_size=batch_size)


def breakdown_toggled(state: AppState) -> AppState:
    by = ROW_MODULE if state.breakdown_by == ROW_LINE else ROW_LINE
    return replace(state, breakdown_by=by)


def modules_expanded(state: AppState, expanded: frozenset[str]) -> AppState:
    return replace(state, expanded_modules=expanded)


def profile_on_save_set(state: AppState, enabled: bool) -> AppState:
    return replace(state, profile_on_save=enabled)


def save_seen(state: AppState) -> AppState:
    return replace(state, saves_seen=state.saves_seen + 1)


# ---- the history: the change against a baseline, the pinned baseline, a past run ---------------------


def run_recorded(state: AppState, report: Report, run_id: Optional[int],
                 comparison: Optional[RunComparison]) -> AppState:
    """A finished run was recorded as ``run_id`` (None: the store could not take it) and compared with its
    baseline.  A failed run keeps the last comparison: it describes the numbers still on screen."""
    history = state.history
    if run_id is not None:
        history = replace(history, latest_run=run_id)
    if report.error is None:
        history = replace(history, comparison=comparison, compared=(report.entry_point, report.created_at))
    return replace(state, history=history)


def baseline_pinned(state: AppState, run_id: int, baseline: Report) -> AppState:
    """Run ``run_id`` (whose report is ``baseline``) becomes what the Δ compares with, from now on and for
    the live run already on screen."""
    history = replace(state.history, pinned=run_id)
    shown = state.live.shown
    if shown is not None and shown.throughput is not None:
        history = replace(history, comparison=compare_runs(baseline, shown, run_id, pinned=True),
                          compared=(shown.entry_point, shown.created_at))
    return replace(state, history=history)


def past_run_shown(state: AppState, run_id: int, report: Report) -> AppState:
    """The panes show run ``run_id`` from the store; the live run goes on underneath, untouched."""
    past = PastRun(run_id, apply_report(LiveState(), run_id, report), report.created_at)
    return replace(state, history=replace(state.history, past=past))


def past_run_left(state: AppState) -> AppState:
    """Back to the live run (escape, r, a new run starting)."""
    if state.history.past is None:
        return state
    return replace(state, history=replace(state.history, past=None))


def on_screen(state: AppState) -> AppState:
    """The state the panes render: the past run in place of the live one while one is shown (idle, as its
    own current run, so no pane calls its sections old), else ``state`` itself."""
    past = state.history.past
    if past is None:
        return state
    return replace(state, live=past.live, run=RunState(), current_run=past.run_id)


def shown_comparison(state: AppState) -> Optional[RunComparison]:
    """The comparison for what the panes show now: none for a past run, nor for a report other than the
    one compared (a run under way, a failed run)."""
    shown, history = state.live.shown, state.history
    if history.past is not None or shown is None or history.compared != (shown.entry_point, shown.created_at):
        return None
    return history.comparison


def comparison_label(state: AppState) -> str:
    """What the change is against, as the panes say it: 'previous run #3', 'pinned run #1'."""
    comparison = state.history.comparison
    if comparison is None or comparison.baseline_id is None:
        return "previous run"
    return f"{'pinned' if comparison.pinned else 'previous'} run #{comparison.baseline_id}"


def past_run_title(state: AppState) -> Optional[str]:
    """The mark of a past run on screen (the app's subtitle), None while the live run is shown."""
    past = state.history.past
    if past is None:
        return None
    return f"PAST RUN #{past.run_id} · {past.created_at or ''} · escape or r: back to the live run"
