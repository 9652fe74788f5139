"""The live view of ``skyline-tui run``: the run's events, folded into one state a few times a second.

Wiring only.  The run (launch, summary, history: ``run.command.supervise``, the headless path's own code)
goes on in a worker thread; its events land in a :class:`RunEventBuffer`, which announces them with one
message until the app drains them, at most every ``REPAINT_S``: a step event per millisecond costs one
repaint per ``REPAINT_S``, not a thousand.  The state is changed only by ``tui.run_state``'s pure
functions and rendered by :class:`~skyline_tui.tui.views.run_main.RunMainView`.  Never imports torch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Callable, Optional

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer

from skyline_tui.project import display_path
from skyline_tui.report import ErrorInfo
from skyline_tui.run import events as ev
from skyline_tui.run.command import Outcome
from skyline_tui.run.launcher import EventSink
from skyline_tui.tui import run_state as transitions
from skyline_tui.tui.run_state import ENDED, STOPPING, RunView, status_text
from skyline_tui.tui.views.confirm import ConfirmScreen
from skyline_tui.tui.views.health import HealthPane
from skyline_tui.tui.views.help import RUN_KEYS, HelpScreen
from skyline_tui.tui.views.log import MAX_LOG_LINES, LogPane
from skyline_tui.tui.views.run_main import RunMainView
from skyline_tui.tui.views.run_panes import RunStatus
from skyline_tui.tui.views.source import SourceView

REPAINT_S = 0.25

# The run, from start to history: called on the worker thread with the event sink and a callback that
# receives the script's process once it is started; returns the outcome (None: it could not start).
Supervisor = Callable[[EventSink, Callable[[subprocess.Popen[bytes]], None]], Optional[Outcome]]


class EventsWaiting(Message):
    """Events are buffered; the app drains them with :meth:`RunEventBuffer.drain`."""


class RunEventBuffer:
    """The sink the run's thread calls with every event; the script's output is kept apart, bounded."""

    def __init__(self, post: Callable[[Message], object]) -> None:
        self._post = post
        self._lock = threading.Lock()
        self._events: list[ev.Event] = []
        self._output: deque[tuple[str, str]] = deque(maxlen=MAX_LOG_LINES)  # (stream, line), newest kept
        self._announced = False

    def __call__(self, event: ev.Event) -> None:
        with self._lock:
            if isinstance(event, ev.ScriptOutput):  # a whole line (the launcher assembles them)
                self._output.append((event.stream, event.text))
            else:
                self._events.append(event)
            announce, self._announced = not self._announced, True
        if announce:
            self._post(EventsWaiting())

    def drain(self) -> tuple[list[ev.Event], list[tuple[str, str]]]:
        with self._lock:
            events, self._events = self._events, []
            output = list(self._output)
            self._output.clear()
            self._announced = False
        return events, output


class RunApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "skyline-tui run"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False),  # the terminal's Ctrl-C is a key here: the same question
        Binding("question_mark", "help", "Keys"),
        Binding("l", "toggle_log", "Log"),
        Binding("H", "toggle_health", "Layers"),
        Binding("e", "show_problem", "NaN/error line"),
        Binding("n", "metric(1)", "Next metric"),  # the metrics pane's, in the order the script first logged them
        Binding("p", "metric(-1)", "Previous metric", show=False),
    ]

    def __init__(self, script: str, shown: str, project_root: Path, supervisor: Supervisor, *,
                 health_schedule: Optional[str] = None, host_ram_bytes: Optional[int] = None,
                 gpu_total: Optional[Callable[[], Optional[int]]] = None) -> None:
        super().__init__()
        self.script = script  # the file shown in the source pane (None for -m)
        self.project_root = project_root
        self.sub_title = shown
        self.view = transitions.capacity_read(RunView(script=shown), host_ram_bytes, None)
        self.health_schedule = health_schedule  # None: health off
        self._supervisor = supervisor
        self._gpu_total = gpu_total
        self._buffer = RunEventBuffer(self.post_message)
        self._drain_scheduled = False
        self._child: Optional[subprocess.Popen[bytes]] = None
        self._child_lock = threading.Lock()
        self._stop_when_started = False
        self._quit_when_over = False
        self.exit_status: Optional[int] = None  # the script's, as a shell reports it, once over

    def compose(self) -> ComposeResult:
        yield RunMainView(self.project_root, id="main")
        yield RunStatus(id="run-status")
        yield Footer()

    def on_mount(self) -> None:
        if self.script:
            path = Path(self.script).resolve()
            self.query_one(SourceView).show_file(path, display_path(path, self.project_root), 1)
        self._render()
        self._run()

    # ---- the run, on its thread -----------------------------------------------------------------------

    @work(thread=True, group="run", exit_on_error=False)
    def _run(self) -> None:
        try:
            outcome = self._supervisor(self._buffer, self._started)
        except Exception as exc:  # the launcher failed: say so, keep the view
            self.call_from_thread(self._failed, f"cannot run the script: {exc}")
            return
        self.call_from_thread(self._over, outcome)

    def _started(self, child: subprocess.Popen[bytes]) -> None:
        with self._child_lock:
            self._child = child
            stop = self._stop_when_started
        if stop:
            self._interrupt()

    # ---- events, on the UI thread --------------------------------------------------------------------

    def on_events_waiting(self, _: EventsWaiting) -> None:
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.set_timer(REPAINT_S, self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        events, output = self._buffer.drain()
        if output:
            self.query_one(LogPane).append(output)
        if events:
            cuda_before = self.view.cuda
            self.view = transitions.fold(self.view, events)
            if self.view.cuda and not cuda_before and self._gpu_total is not None:
                self._read_gpu_capacity()
            self._render()

    @work(thread=True, group="gpu", exit_on_error=False)
    def _read_gpu_capacity(self) -> None:
        assert self._gpu_total is not None
        total = self._gpu_total()
        self.call_from_thread(self._gpu_capacity_read, total)

    def _gpu_capacity_read(self, total: Optional[int]) -> None:
        self.view = transitions.capacity_read(self.view, self.view.host_ram_bytes, total)
        self._render()

    def _over(self, outcome: Optional[Outcome]) -> None:
        self._drain()
        if outcome is None:
            self._failed("the run could not start (see the message above)")
            return
        self.exit_status = outcome.exit_status
        self.view = transitions.run_over(self.view, outcome.summary, outcome.run_id)
        self._render()
        if self._quit_when_over:
            self.exit(self.exit_status)

    def _failed(self, message: str) -> None:
        self.view = transitions.run_over_without_summary(self.view, ErrorInfo("internal", message))
        self.exit_status = 1
        self._render()

    def _render(self) -> None:
        self.query_one(RunMainView).show(self.view, self.health_schedule)
        self.query_one(RunStatus).show(status_text(self.view), self.view.phase == ENDED)

    # ---- actions --------------------------------------------------------------------------------------

    def action_quit(self) -> None:  # type: ignore[override]
        if self.view.phase == ENDED:
            self.exit(self.exit_status if self.exit_status is not None else 0)
            return
        if self.view.phase == STOPPING:
            self.push_screen(ConfirmScreen("The script is still running",
                                           "Ctrl-C was sent and the script has not ended yet. Kill it (SIGKILL)? "
                                           "The run is recorded all the same."), self._kill_answered)
            return
        self.push_screen(ConfirmScreen("Stop the run?",
                                       "The script gets Ctrl-C (SIGINT): its own handler runs. The run is "
                                       "recorded in the history as it is, then skyline-tui quits."),
                         self._stop_answered)

    def _stop_answered(self, yes: Optional[bool]) -> None:
        if not yes or self.view.phase == ENDED:
            if yes:
                self.exit(self.exit_status if self.exit_status is not None else 0)
            return
        self.view = transitions.stop_asked(self.view)
        self._quit_when_over = True
        self._render()
        with self._child_lock:
            self._stop_when_started = self._child is None
        self._interrupt()

    def _interrupt(self) -> None:
        with self._child_lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)

    def _kill_answered(self, yes: Optional[bool]) -> None:
        with self._child_lock:
            child = self._child
        if yes and child is not None and child.poll() is None:
            child.kill()

    def leave_on_signal(self, signum: int) -> None:
        """SIGTERM or SIGHUP (an SSH drop) reached skyline-tui: pass it on to the script, as the headless run
        does, and quit once the run is recorded (``run_launch`` arms a fallback in case it never ends)."""
        if self.view.phase == ENDED:
            self.exit(self.exit_status if self.exit_status is not None else 128 + signum)
            return
        self.view = transitions.stop_asked(self.view)
        self._quit_when_over = True
        with self._child_lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def kill_script(self) -> None:
        """The last resort (the fallback after a signal, a crash of the app): the script must not outlive us."""
        with self._child_lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def on_unmount(self) -> None:
        self._interrupt()  # only if it still runs (the app failed): its own handler gets the chance to save

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.project_root, RUN_KEYS))

    def action_metric(self, delta: int) -> None:
        if not self.view.metrics:
            self.notify("No metric logged so far (skyline_tui.track.log in the script).", timeout=3)
            return
        self.view = transitions.metric_chosen(self.view, delta)
        self._render()

    def action_toggle_log(self) -> None:
        log = self.query_one(LogPane)
        log.display = not log.display

    def action_toggle_health(self) -> None:
        health = self.query_one(HealthPane)
        health.display = not health.display
        if health.display:
            health.focus()

    def action_show_problem(self) -> None:
        """The first NaN/Inf's line when it was located, else the error's."""
        found = self.view.located.where if self.view.located is not None else None
        main = self.query_one(RunMainView)
        if found is not None and found.file is not None:
            main.jump_to(found.file, found.line)
        elif self.view.error is not None:
            main.show_error_line(self.view.error)
        else:
            self.notify("No NaN/Inf and no error so far.", timeout=3)


def host_ram_bytes() -> Optional[int]:
    """The machine's RAM (the capacity of a CPU run's memory); None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
