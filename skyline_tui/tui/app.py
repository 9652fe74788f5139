"""The Textual app: source beside live panes, keyboard from chart to code, batch size on the keys.

Wiring only.  Profiler events arrive on the source's thread and are posted to the UI as messages; every
event, key and save becomes a pure transition of the one :class:`~skyline_tui.tui.state.AppState` the app
holds, and the screen is re-rendered from it (:class:`~skyline_tui.tui.views.main.MainView`).  This module
(and everything it imports) never imports torch: the profiler lives in the worker process.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer

from skyline_tui.config import ProfileConfig
from skyline_tui.project import display_path, project_root
from skyline_tui.report import ErrorInfo
from skyline_tui.rewrite import RewriteError, write_batch_size
from skyline_tui.tui import state as transitions
from skyline_tui.tui.bridge import EventBridge, LogsWaiting, ProfileSource, ProfilerEvent, SourceFactory
from skyline_tui.tui.gpu import NOT_AVAILABLE, GpuMonitor, GpuSample
from skyline_tui.tui.history_actions import AppHistory
from skyline_tui.tui.history_sink import HistorySink
from skyline_tui.tui.profile_on_save import FilesSaved, ProfileOnSave, WatchingChanged, describe_saves
from skyline_tui.tui.state import AppState, LiveState, past_run_title
from skyline_tui.predictions.targets import step_batch_size
from skyline_tui.tui.views.breakdown import BreakdownTable
from skyline_tui.tui.views.health import HealthPane
from skyline_tui.tui.views.help import HelpScreen
from skyline_tui.tui.views.log import MAX_LOG_LINES, LogPane
from skyline_tui.tui.views.main import MainView, open_modules
from skyline_tui.tui.views.messages import ToggleModule, TreeRoomChanged
from skyline_tui.tui.module_tree import toggled
from skyline_tui.tui.views.source import SourceView
from skyline_tui.tui.views.status import StatusBar
from skyline_tui.worker.protocol import RunProgress, RunReport, RunStarted, WorkerGone, WorkerReady

GPU_POLL_SECONDS = 1.5


class SkylineApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere (tests)
    TITLE = "skyline-tui"
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Keys"),
        Binding("r", "reprofile", "Re-profile"),
        Binding("s", "toggle_profile_on_save", "On save"),
        Binding("plus,equals_sign", "batch_up", "Batch +"),
        Binding("minus,underscore", "batch_down", "Batch −"),
        Binding("right_square_bracket", "batch_double", "×2", show=False),
        Binding("left_square_bracket", "batch_halve", "÷2", show=False),
        Binding("0", "batch_reset", "Profiled batch", show=False),
        Binding("w", "write_batch_size", "Write batch"),
        Binding("m", "toggle_breakdown", "Lines/modules"),
        Binding("l", "toggle_log", "Log"),
        Binding("h", "history", "History", show=False),  # in the ? screen; the footer is full at 80 columns
        Binding("escape", "live_run", "Live run", show=False),  # from a past run (enter on the h screen)
        Binding("H", "toggle_health", "Health", show=False),
        Binding("e", "show_error", "Error line", show=False),
    ]

    def __init__(
        self,
        entry: str,
        root: Optional[str] = None,
        config: Optional[ProfileConfig] = None,
        *,
        source: SourceFactory,
        gpu: Optional[GpuMonitor] = None,
        clock: Callable[[], datetime] = datetime.now,
        profile_on_start: bool = True,
        watch: bool = False,
        history: Optional[HistorySink] = None,
    ) -> None:
        super().__init__()
        self.entry = entry
        self.root = root
        self.config = config or ProfileConfig()
        self.project_root = project_root(entry, root)  # the profiler child resolves the same one
        self.sub_title = f"project root {self.project_root}"
        self.state = AppState(profile_on_save=watch)  # the one home of what the screen shows
        self.save_watcher = ProfileOnSave(self.project_root, self.post_message)
        self._source_factory = source
        self._source: Optional[ProfileSource] = None
        self._source_ready = threading.Event()
        self._gpu = gpu or GpuMonitor()
        self._gpu_sample: GpuSample = NOT_AVAILABLE
        self._clock = clock
        self._profile_on_start = profile_on_start
        self.monotonic = time.monotonic  # the run's elapsed time in the status bar (tests may replace it)
        self._bridge = EventBridge(self.post_message, MAX_LOG_LINES)
        # None: nothing recorded (tests, --no-history)
        self.history = AppHistory(self, history or HistorySink(None), lambda: self.state, self._set)

    # Views of the state, for tests.
    @property
    def live(self) -> LiveState:
        """The live run's reports (also while a past run is on screen)."""
        return self.state.live

    @property
    def current_run(self) -> Optional[int]:
        return self.state.current_run

    @property
    def target_batch_size(self) -> Optional[int]:
        return self.state.target_batch_size

    # ---- layout and lifecycle ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield MainView(self.project_root, id="main")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LogPane).display = False
        self.query_one(HealthPane).display = False
        entry = Path(self.entry).resolve()
        self.query_one(SourceView).show_file(entry, display_path(entry, self.project_root), 1)
        self._render_report()
        self._source = self._source_factory(self._bridge)
        self._start_source()
        if self.state.profile_on_save:
            self._apply_profile_on_save()

    def on_ready(self) -> None:
        # After the first frame: importing pynvml and probing the driver must not delay it.
        self.set_interval(GPU_POLL_SECONDS, self._poll_gpu)
        self._poll_gpu()

    def on_unmount(self) -> None:
        self.save_watcher.close()
        if self._source is not None:
            try:
                self._source.close()
            except Exception:  # closing a dead worker must not turn quitting into a crash
                pass
        self._gpu.close()

    def _set(self, state: AppState, render: str = "report") -> None:
        """Take the new state and re-render what it changes: "report" (every pane), "target", "status"."""
        self.state = state
        if render == "report":
            self._render_report()
        elif render == "target":
            self.query_one(MainView).show_target(state)
        else:
            self._render_status()

    # ---- the profiler source (background threads) -----------------------------------------------

    @work(thread=True, group="source", exit_on_error=False)
    def _start_source(self) -> None:
        try:
            assert self._source is not None
            self._source.start()
        except Exception as exc:
            self.call_from_thread(self._fail, ErrorInfo("internal", f"cannot start the profiler: {exc}"))
            return
        self._source_ready.set()
        if self._profile_on_start:
            self.call_from_thread(self.request_profile, "start")

    def request_profile(self, reason: str) -> None:
        """Profile the entry point now (cancelling a run under way).  A settled save calls this too.
        A past run on screen gives way to the run asked for; `w` may rewrite the code these numbers describe."""
        self._set(transitions.run_queued(self.state, _read_bytes(self.entry)), "status")
        self._submit(reason)

    @work(thread=True, group="submit", exit_on_error=False)
    def _submit(self, reason: str) -> None:
        if not self._source_ready.wait(timeout=60) or self._source is None:
            return
        try:
            self._source.start()  # no-op while the worker lives; restarts it after a crash
            run_id = self._source.submit(self.entry, self.root, self.history.sink.judging(self.config, self.entry))
        except Exception as exc:
            self.call_from_thread(self._fail, ErrorInfo("internal", f"cannot start a profile ({reason}): {exc}"))
            return
        self.call_from_thread(self._run_submitted, run_id)

    def _run_submitted(self, run_id: int) -> None:
        state = transitions.run_submitted(self.state, run_id)
        if state is not self.state:
            self._set(state)

    def _fail(self, error: ErrorInfo) -> None:
        self._set(transitions.run_failed(self.state, error))

    # ---- events, on the UI thread -----------------------------------------------------------------

    def on_logs_waiting(self, _: LogsWaiting) -> None:
        self.query_one(LogPane).append(self._bridge.drain_logs())

    def on_profiler_event(self, message: ProfilerEvent) -> None:
        event = message.event
        if isinstance(event, WorkerReady):
            return
        if isinstance(event, WorkerGone):
            self._set(transitions.profiler_gone(self.state, event.message))
            return
        if self.state.current_run is not None and event.run_id < self.state.current_run:
            return  # a cancelled run still draining
        if isinstance(event, RunReport) and event.final and event.report.error is not None \
                and event.report.error.kind == "cancelled":
            return  # superseded by a newer request (a save mid-run) or the worker closing: nothing to show
        if isinstance(event, RunStarted):
            self.query_one(SourceView).reload()  # the code being profiled, not what was on disk before
            self._set(transitions.run_started(self.state, event.run_id, self.monotonic()))
        elif isinstance(event, RunProgress):
            self._set(transitions.run_progressed(self.state, event.run_id, event.phase), "status")
        elif isinstance(event, RunReport):
            self._take_report(event)

    def _take_report(self, event: RunReport) -> None:
        had_error = self.state.live.error is not None
        at = self._clock().strftime("%H:%M:%S")
        self._set(transitions.report_received(self.state, event.run_id, event.report, event.final, at))
        if event.final:
            self.history.record(event.report, self.config)  # cancelled runs never get here
        if event.report.error is not None and (event.final or not had_error):
            self.action_show_error()

    def on_files_saved(self, message: FilesSaved) -> None:
        if not self.state.profile_on_save:
            return  # turned off while this burst was settling
        self.state = transitions.save_seen(self.state)
        source = self.query_one(SourceView)
        if source.file is not None:
            shown = self.project_root / source.file
            if any(Path(path) == shown.resolve() for path in message.paths):
                source.show_file(shown, source.file)  # re-read: it changed on disk; the cursor stays
        self.request_profile(describe_saves(message.paths, self.project_root))

    def on_watching_changed(self, message: WatchingChanged) -> None:
        if message.problem is not None:
            self.notify(f"cannot watch the project: {message.problem}", title="Profile on save is off",
                        severity="warning")
            self.state = transitions.profile_on_save_set(self.state, False)
        self._render_status()

    @work(thread=True, group="watch", exit_on_error=False)
    def _apply_profile_on_save(self) -> None:
        self.save_watcher.apply(self.state.profile_on_save)

    # ---- rendering --------------------------------------------------------------------------------

    def _render_report(self) -> None:
        self.query_one(MainView).show(self.state)
        self.sub_title = past_run_title(self.state) or f"project root {self.project_root}"
        self._render_status()

    def _render_status(self) -> None:
        shown = self.state.live.shown
        device = shown.device if shown else None
        name = f"{device.type.upper()} · {device.name}" if device else None
        on_cpu = device is not None and device.type == "cpu"
        run = self.state.run
        elapsed = self.monotonic() - run.started_at if run.phase is not None and run.started_at is not None else None
        self.query_one(StatusBar).show(name, on_cpu, self._gpu_sample, run, on_save=self.state.profile_on_save,
                                       elapsed_s=elapsed, timeout_s=self.config.timeout_s)

    # ---- GPU readings ---------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="gpu", exit_on_error=False)
    def _poll_gpu(self) -> None:
        # The GPU the report on screen ran on, by UUID; no CUDA report: no GPU to read, and a problem is
        # kept for when one is on screen (taken earlier, the notice would never be seen).
        shown = self.live.shown
        device = shown.device if shown is not None else None
        if device is None or device.type != "cuda":
            sample, problem = NOT_AVAILABLE, None
        else:
            sample, problem = self._gpu.sample(device.uuid), self._gpu.take_problem()
        self.call_from_thread(self._gpu_sampled, sample, problem)

    def _gpu_sampled(self, sample: GpuSample, problem: Optional[str]) -> None:
        self._gpu_sample = sample
        if problem:
            self.notify(problem, title="GPU readings unavailable", severity="warning")
        self._render_status()

    # ---- the module tree (the source pane and the tables talk inside MainView) ---------------------

    def on_toggle_module(self, message: ToggleModule) -> None:
        expanded = open_modules(self.state, self.query_one(BreakdownTable).tree_rows)
        self._set(transitions.modules_expanded(self.state, toggled(expanded, message.path, message.expand)))

    def on_tree_room_changed(self, _: TreeRoomChanged) -> None:
        if self.state.expanded_modules is None:  # the user has not chosen: open the levels that fit now
            self._render_report()

    # ---- actions ----------------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.project_root))

    def action_reprofile(self) -> None:
        self.request_profile("key r")

    def action_history(self) -> None:
        self.history.open(self.entry)

    def action_live_run(self) -> None:
        self._set(transitions.past_run_left(self.state))

    def action_toggle_profile_on_save(self) -> None:
        self.state = transitions.profile_on_save_set(self.state, not self.state.profile_on_save)
        self.notify(f"Profile on save: {'on' if self.state.profile_on_save else 'off'}", timeout=2)
        self._render_status()
        self._apply_profile_on_save()

    def _base_batch_size(self) -> Optional[int]:
        shown = self.state.live.shown
        return shown.batch_size if shown is not None else None

    def _move_target(self, direction: int, coarse: bool) -> None:
        base = self._base_batch_size()
        if base is None:
            self.notify("No profile yet: the batch size is not known.", timeout=3)
            return
        moved = step_batch_size(self.state.target_batch_size or base, direction, coarse)
        self._set(transitions.target_set(self.state, moved), "target")

    def action_batch_up(self) -> None:
        self._move_target(1, coarse=False)

    def action_batch_down(self) -> None:
        self._move_target(-1, coarse=False)

    def action_batch_double(self) -> None:
        self._move_target(1, coarse=True)

    def action_batch_halve(self) -> None:
        self._move_target(-1, coarse=True)

    def action_batch_reset(self) -> None:
        self._set(transitions.target_set(self.state, None), "target")

    def action_write_batch_size(self) -> None:
        target = self.state.target_batch_size
        if target is None or target == self._base_batch_size():
            self.notify("Move the target batch size with + - [ ] first.", timeout=3)
            return
        path = Path(self.entry)
        try:
            self._write_batch_size(path, target)
        except Exception as exc:  # refused (file changed, default not a literal...): say why, keep going
            self.notify(str(exc), title="Batch size not written", severity="error")
            return
        self.notify(f"batch_size={target} written into {path.name}", timeout=3)
        self.request_profile(f"batch size {target} written")

    def _write_batch_size(self, path: Path, batch_size: int) -> None:
        """The one seam to skyline_tui.rewrite: only the default literal changes, atomically."""
        expected = self.state.profiled_source
        try:
            write_batch_size(path, batch_size, expected_source=expected)
        except RewriteError:
            if expected is not None and _read_bytes(path) != expected:
                raise RewriteError(f"{path.name} changed since it was profiled: press r to re-profile, "
                                   "then write the batch size") from None
            raise

    def action_toggle_breakdown(self) -> None:
        self._set(transitions.breakdown_toggled(self.state))

    def action_toggle_health(self) -> None:
        self.query_one(MainView).toggle_health()

    def action_toggle_log(self) -> None:
        log = self.query_one(LogPane)
        log.display = not log.display

    def action_show_error(self) -> None:
        self.query_one(MainView).show_error_line(self.state.live.error)


def _read_bytes(path: "str | Path") -> Optional[bytes]:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None
