"""The Textual app: source beside live panes, keyboard from chart to code, batch size on the keys.

Wiring only.  Profiler events arrive on the source's thread and are posted to the UI as messages; every
report is folded into a :class:`~skyline_tui.tui.state.LiveState`, and the panes are handed plain values to
render.  Predictions at the target batch size come from :mod:`skyline_tui.tui.targets`.  This module (and
everything it imports) never imports torch: the profiler lives in the worker process.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional, Protocol

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from skyline_tui.tui.bridge import EventBridge, LogsWaiting, ProfilerEvent
from skyline_tui.config import ProfileConfig
from skyline_tui.tui.gpu import NOT_AVAILABLE, GpuMonitor, GpuSample
from skyline_tui.tui.history_actions import HistoryActions
from skyline_tui.tui.history_sink import HistorySink
from skyline_tui.tui.state import LiveState, apply_report, fail_run, pane_note, predictions_are_old
from skyline_tui.project import display_path, project_root
from skyline_tui.tui.profile_on_save import ProfileOnSave
from skyline_tui.report import ErrorInfo
from skyline_tui.tui.targets import step_batch_size, target_prediction
from skyline_tui.tui.views.batch import BatchControl
from skyline_tui.tui.views.breakdown import BreakdownTable
from skyline_tui.tui.views.errors import ErrorPane
from skyline_tui.tui.views.health import HealthPane
from skyline_tui.tui.views.help import HelpScreen
from skyline_tui.tui.views.log import MAX_LOG_LINES, LogPane
from skyline_tui.tui.views.memory import ActivationTable, MemoryPane
from skyline_tui.tui.views.messages import JumpToSource, PreviewSource
from skyline_tui.tui.views.pane import show_freshness
from skyline_tui.tui.views.rows import ROW_LINE, ROW_MODULE, activation_rows, breakdown_rows
from skyline_tui.tui.views.source import SourceView
from skyline_tui.tui.views.status import RunState, StatusBar
from skyline_tui.tui.views.throughput import ThroughputPane
from skyline_tui.worker.protocol import Event, RunProgress, RunReport, RunStarted, WorkerGone, WorkerReady

GPU_POLL_SECONDS = 1.5


class ProfileSource(Protocol):
    """Where reports come from: the worker client in real use, a replaying fake in tests.

    It is built by a factory that receives the callback, ``factory(on_event)``; ``on_event`` may be called
    on any thread.  ``WorkerClient`` itself is such a factory.  ``start`` must be idempotent: the app
    calls it again before a submit, which brings a worker that went away back.
    """

    def start(self) -> None: ...

    def submit(self, entry: str, root: Optional[str], config: ProfileConfig) -> int: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


SourceFactory = Callable[[Callable[[Event], None]], ProfileSource]


class SkylineApp(ProfileOnSave, HistoryActions, App[int]):
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
        self._init_profile_on_save(watch)  # a settled burst of saves calls request_profile
        self._source_factory = source
        self._source: Optional[ProfileSource] = None
        self._source_ready = threading.Event()
        self._gpu = gpu or GpuMonitor()
        self._gpu_sample: GpuSample = NOT_AVAILABLE
        self._clock = clock
        self._profile_on_start = profile_on_start

        self.live = LiveState()
        self.current_run: Optional[int] = None
        self.run_state = RunState()
        self.monotonic = time.monotonic  # the run's elapsed time in the status bar (tests may replace it)
        self._run_started_at: Optional[float] = None
        self.target_batch_size: Optional[int] = None  # None: the profiled batch size
        self.breakdown_by = ROW_LINE
        self._bridge = EventBridge(self.post_message, MAX_LOG_LINES)
        self._init_history(history)  # None: nothing recorded (tests, --no-history)

    # ---- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield SourceView(id="source")
                yield LogPane(id="log")
            with Vertical(id="right"):
                yield ThroughputPane(id="throughput")
                yield BatchControl(id="batch")
                yield ErrorPane(id="error")
                yield BreakdownTable(id="breakdown")
                yield MemoryPane(id="memory")
                yield HealthPane(id="health")
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
        if self.profile_on_save:
            self._apply_profile_on_save()

    def on_ready(self) -> None:
        # After the first frame: importing pynvml and probing the driver must not delay it.
        self.set_interval(GPU_POLL_SECONDS, self._poll_gpu)
        self._poll_gpu()

    def on_unmount(self) -> None:
        self._stop_watching()
        if self._source is not None:
            try:
                self._source.close()
            except Exception:  # closing a dead worker must not turn quitting into a crash
                pass
        self._gpu.close()

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
        """Profile the entry point now (cancelling a run under way).  The file watcher calls this too."""
        self.leave_past_run()  # a past run on screen gives way to the run being asked for
        self.run_state = RunState("queued", self.current_run, self.run_state.last_report_at, self.run_state.failed)
        self._render_status()
        self._profiled_source = _read_bytes(self.entry)  # what `w` may rewrite: the code these numbers describe
        self._submit(reason)

    @work(thread=True, group="submit", exit_on_error=False)
    def _submit(self, reason: str) -> None:
        if not self._source_ready.wait(timeout=60) or self._source is None:
            return
        try:
            self._source.start()  # no-op while the worker lives; restarts it after a crash
            run_id = self._source.submit(self.entry, self.root, self.config)
        except Exception as exc:
            self.call_from_thread(self._fail, ErrorInfo("internal", f"cannot start a profile ({reason}): {exc}"))
            return
        self.call_from_thread(self._run_submitted, run_id)

    def _run_submitted(self, run_id: int) -> None:
        if self.current_run is None or run_id > self.current_run:
            self.current_run = run_id
            self._render_report()

    # ---- events, on the UI thread -----------------------------------------------------------------

    def on_logs_waiting(self, _: LogsWaiting) -> None:
        self.query_one(LogPane).append(self._bridge.drain_logs())

    def on_profiler_event(self, message: ProfilerEvent) -> None:
        event = message.event
        if isinstance(event, WorkerReady):
            return
        if isinstance(event, WorkerGone):
            # A run under way when the process went fails with it; an idle worker's last run stands.
            failed = self.run_state.failed or self.run_state.phase is not None
            self.run_state = RunState(None, self.current_run, self.run_state.last_report_at, failed,
                                      profiler_ended=True)
            if self.live.error is not None and self.live.error_run == self.current_run:
                self._render_status()  # the run it was serving already said why it ended
                return
            self.live = fail_run(self.live, self.current_run,
                                 ErrorInfo("crash", f"the profiler process ended ({event.message}); r starts it again"))
            self._render_report()
            return
        if self.current_run is not None and event.run_id < self.current_run:
            return  # a cancelled run still draining
        if isinstance(event, RunReport) and event.final and event.report.error is not None \
                and event.report.error.kind == "cancelled":
            return  # superseded by a newer request (a save mid-run) or the worker closing: nothing to show
        self.current_run = event.run_id
        if isinstance(event, RunStarted):
            self.leave_past_run()
            self._run_started_at = self.monotonic()
            self.run_state = RunState("starting", event.run_id, self.run_state.last_report_at, self.run_state.failed)
            self.query_one(SourceView).reload()  # the code being profiled, not what was on disk before
            self._render_report()
        elif isinstance(event, RunProgress):
            self.run_state = RunState(event.phase, event.run_id, self.run_state.last_report_at, self.run_state.failed)
            self._render_status()
        elif isinstance(event, RunReport):
            self._take_report(event)

    def _take_report(self, event: RunReport) -> None:
        had_error = self.live.error is not None
        self.live = apply_report(self.live, event.run_id, event.report)
        failed = event.report.error is not None
        phase = None if event.final else self.run_state.phase
        self.run_state = RunState(phase, event.run_id, self._clock().strftime("%H:%M:%S"), failed)
        self._render_report()
        if event.final:
            self._history_take_final(event.report)
        if failed and (event.final or not had_error):
            self.action_show_error()

    def _fail(self, error: ErrorInfo) -> None:
        self.live = fail_run(self.live, self.current_run, error)
        self.run_state = RunState(None, self.current_run, self.run_state.last_report_at, failed=True)
        self._render_report()

    # ---- rendering: hand each pane its values -------------------------------------------------------

    def _render_report(self) -> None:
        with self.batch_update():
            shown = self.live.shown
            breakdown = shown.breakdown if shown else None
            rows = breakdown_rows(breakdown, self.breakdown_by) if breakdown else None
            table = self.query_one(BreakdownTable)
            table.show(rows, self.breakdown_by, self.shown_comparison())
            by = "per line" if self.breakdown_by == ROW_LINE else "per module"
            show_freshness(table, f"Run time {by}", self._note("breakdown"))
            memory = shown.memory if shown else None
            self.query_one(ActivationTable).show(activation_rows(memory) if memory else [])
            health_pane = self.query_one(HealthPane)
            health_pane.show_report(shown.health if shown else None, breakdown)
            show_freshness(health_pane, "Health", self._note("health"))
            error_run = self.live.error_run
            older = any(run != error_run for _, run in self.live.section_runs)
            self.query_one(ErrorPane).show(self.live.error, kept_previous=older)
            source = self.query_one(SourceView)
            error = self.live.error
            source.set_error_line(error.line if error is not None and error.file == source.file else None)
            self._render_target()
            self._render_status()

    def _render_target(self) -> None:
        shown = self.live.shown
        target = None
        if shown is not None and shown.batch_size is not None:
            target = target_prediction(shown, self.target_batch_size or shown.batch_size)
        predicted = target is not None and not target.measured  # rows evaluated from the fits
        throughput = self.query_one(ThroughputPane)
        comparison, against = self.shown_comparison(), self.comparison_label()
        throughput.show(
            shown.throughput if shown else None, shown.predictions if shown else None,
            shown.batch_size if shown else None, target,
            change=comparison.throughput if comparison else None, against=against,
        )
        show_freshness(throughput, "Throughput", self._note("throughput", shows_fit=True))
        self.query_one(BatchControl).show(shown.batch_size if shown else None, target, fit_is_old=self._fit_is_old())
        memory_pane = self.query_one(MemoryPane)
        memory_pane.show_summary(shown.memory if shown else None, target,
                                 change=comparison.peak if comparison else None, against=against)
        show_freshness(memory_pane, "Memory", self._note("memory", shows_fit=predicted))

    def _render_status(self) -> None:
        shown = self.live.shown
        device = shown.device if shown else None
        name = f"{device.type.upper()} · {device.name}" if device else None
        on_cpu = device is not None and device.type == "cpu"
        elapsed = None
        if self.run_state.phase is not None and self._run_started_at is not None:
            elapsed = self.monotonic() - self._run_started_at
        self.query_one(StatusBar).show(name, on_cpu, self._gpu_sample, self.run_state, on_save=self.profile_on_save,
                                       elapsed_s=elapsed, timeout_s=self.config.timeout_s)

    def _note(self, section: str, shows_fit: bool = False) -> Optional[str]:
        """The note a pane's title carries: None (fresh), 'previous run', 'measuring…', 'not measured',
        or 'fit from previous run' where ``shows_fit`` and only the predictions are older."""
        return pane_note(self.live, section, self.current_run, self.run_state.phase is not None, shows_fit)

    def _fit_is_old(self) -> bool:
        return predictions_are_old(self.live, self.current_run)

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

    # ---- source pane <-> tables -------------------------------------------------------------------

    def _path_of(self, file: str) -> Path:
        return self.project_root / file

    def on_jump_to_source(self, message: JumpToSource) -> None:
        if message.file is None:
            self.notify("This row is not tied to a line of your code.", timeout=3)
            return
        source = self.query_one(SourceView)
        source.show_file(self._path_of(message.file), message.file, message.line)
        source.set_marked({message.line} if message.line else set())
        error = self.live.error
        source.set_error_line(error.line if error is not None and error.file == message.file else None)

    def on_preview_source(self, message: PreviewSource) -> None:
        source = self.query_one(SourceView)
        source.set_marked({message.line} if message.file == source.file and message.line else set())

    def on_source_view_cursor_moved(self, message: SourceView.CursorMoved) -> None:
        self.query_one(BreakdownTable).mark_location(message.file, message.line)
        self.query_one(ActivationTable).mark_location(message.file, message.line)

    # ---- actions ----------------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.project_root))

    def action_reprofile(self) -> None:
        self.request_profile("key r")

    def _base_batch_size(self) -> Optional[int]:
        shown = self.live.shown
        return shown.batch_size if shown is not None else None

    def _move_target(self, direction: int, coarse: bool) -> None:
        base = self._base_batch_size()
        if base is None:
            self.notify("No profile yet: the batch size is not known.", timeout=3)
            return
        self.target_batch_size = step_batch_size(self.target_batch_size or base, direction, coarse)
        self._render_target()

    def action_batch_up(self) -> None:
        self._move_target(1, coarse=False)

    def action_batch_down(self) -> None:
        self._move_target(-1, coarse=False)

    def action_batch_double(self) -> None:
        self._move_target(1, coarse=True)

    def action_batch_halve(self) -> None:
        self._move_target(-1, coarse=True)

    def action_batch_reset(self) -> None:
        self.target_batch_size = None
        self._render_target()

    def action_write_batch_size(self) -> None:
        target = self.target_batch_size
        if target is None or target == self._base_batch_size():
            self.notify("Move the target batch size with + - [ ] first.", timeout=3)
            return
        path = Path(self.entry)
        try:
            self._write_batch_size(path, target)
        except NotImplementedError:
            self.notify("Writing the batch size is not available in this build yet.", severity="warning")
            return
        except Exception as exc:  # refused (file changed, default not a literal...): say why, keep going
            self.notify(str(exc), title="Batch size not written", severity="error")
            return
        self.notify(f"batch_size={target} written into {path.name}", timeout=3)
        self.request_profile(f"batch size {target} written")

    def _write_batch_size(self, path: Path, batch_size: int) -> None:
        """The one seam to skyline_tui.rewrite: only the default literal changes, atomically."""
        from skyline_tui.rewrite import RewriteError, write_batch_size

        expected = getattr(self, "_profiled_source", None)
        try:
            write_batch_size(path, batch_size, expected_source=expected)
        except RewriteError:
            if expected is not None and _read_bytes(path) != expected:
                raise RewriteError(f"{path.name} changed since it was profiled: press r to re-profile, "
                                   "then write the batch size") from None
            raise

    def action_toggle_breakdown(self) -> None:
        self.breakdown_by = ROW_MODULE if self.breakdown_by == ROW_LINE else ROW_LINE
        self._render_report()

    def action_toggle_health(self) -> None:
        """The Health pane takes the run-time table's place (it shows each module's share of the time)."""
        health = self.query_one(HealthPane)
        health.display = not health.display
        self.query_one(BreakdownTable).display = not health.display
        if health.display:
            health.focus()

    def action_toggle_log(self) -> None:
        log = self.query_one(LogPane)
        log.display = not log.display

    def action_show_error(self) -> None:
        error = self.live.error
        if error is None or error.file is None:
            return
        source = self.query_one(SourceView)
        source.show_file(self._path_of(error.file), error.file, error.line)
        source.set_error_line(error.line)


def _read_bytes(path: "str | Path") -> Optional[bytes]:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None
