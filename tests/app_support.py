"""Test doubles for the app: a profiler source that replays fixture reports, a GPU, a fixed clock."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional, Sequence

from skyline_tui.config import ProfileConfig
from skyline_tui.tui.gpu import GpuSample
from skyline_tui.report import Report
from skyline_tui.worker.protocol import Event, RunProgress, RunReport, RunStarted

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "reports"
MLP_ENTRY = REPO / "samples" / "mlp" / "entry.py"
TRANSFORMER_ENTRY = REPO / "samples" / "transformer" / "entry.py"
FIXED_TIME = datetime(2025, 1, 15, 10, 42, 7)


def load_report(name: str) -> Report:
    return Report.from_json((FIXTURES / f"{name}.json").read_text())


def fixed_clock() -> datetime:
    return FIXED_TIME


def partial(report: Report, *sections: str) -> Report:
    """The report as a run sends it part-way: only ``sections`` measured so far."""
    cleared = {name: None for name in ("throughput", "breakdown", "memory", "predictions")}
    return report.replace(**{**cleared, **{name: getattr(report, name) for name in sections}})


# One run: the reports it sends, in order, each with its ``final`` flag.
Run = Sequence[tuple[Report, bool]]


class FakeSource:
    """Replays one scripted run per ``submit``, on the submitting thread (a background thread in the app).

    The last run repeats once the script is used up.  ``extra_events`` lets a test inject any event.
    """

    def __init__(self, on_event: Callable[[Event], None], runs: Sequence[Run]) -> None:
        self.on_event = on_event
        self.runs = list(runs)
        self.started = False
        self.closed = False
        self.submitted: list[tuple[str, Optional[str], ProfileConfig]] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self.started = True

    def submit(self, entry: str, root: Optional[str], config: ProfileConfig) -> int:
        with self._lock:
            self.submitted.append((entry, root, config))
            run_id = len(self.submitted)
            run = self.runs[min(run_id, len(self.runs)) - 1] if self.runs else []
        self.on_event(RunStarted(run_id))
        for report, final in run:
            phase = "error" if report.error else "predictions" if final else "throughput"
            self.on_event(RunProgress(run_id, phase if phase != "error" else "load"))
            self.on_event(RunReport(run_id, report, phase, final))
        return run_id

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeSourceFactory:
    """What the app takes as ``source``: builds the FakeSource and keeps it for the test to inspect."""

    def __init__(self, *runs: Run) -> None:
        self.runs = runs
        self.source: Optional[FakeSource] = None

    def __call__(self, on_event: Callable[[Event], None]) -> FakeSource:
        self.source = FakeSource(on_event, self.runs)
        return self.source


class FakeGpu:
    def __init__(self, sample: GpuSample | None = None) -> None:
        self._sample = sample if sample is not None else GpuSample()
        self.uuids: list[Optional[str]] = []  # the UUID of every sample asked for

    def sample(self, uuid: Optional[str] = None) -> GpuSample:
        self.uuids.append(uuid)
        return self._sample

    def take_problem(self) -> Optional[str]:
        return None

    def close(self) -> None:
        pass


async def wait_until(pilot, predicate: Callable[[], bool], timeout: float = 5.0,
                     explain: Optional[Callable[[], str]] = None) -> None:
    """Let the app run until ``predicate()`` holds; fail the test if it never does within ``timeout``
    seconds (a bound on waiting, never an assertion on speed), saying what the app was doing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            await pilot.pause()
            return
        await pilot.pause(0.02)
    state = f": {explain()}" if explain is not None else ""
    raise AssertionError(f"the app never reached the expected state within {timeout:g} s{state}")


def describe_app(app) -> str:
    """The app's run state, error and sections, for a failed wait."""
    live = app.live
    sections = {name: live.run_of(name) for name in ("throughput", "breakdown", "memory", "predictions")}
    return (f"run {app.current_run}, state {app.state.run}, reports received {live.reports_received}, "
            f"sections from runs {sections}, error {live.error}")


def text_of(widget) -> str:
    """What ``widget`` shows on screen right now, as plain text lines."""
    from textual.geometry import Region

    size = widget.outer_size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, size.width, size.height)))


def make_app(*runs, entry=MLP_ENTRY, gpu=None, **kwargs) -> tuple:
    """The app on a fake source replaying ``runs`` (each a list of (report, final)), a fake GPU and a fixed clock."""
    from skyline_tui.tui.app import SkylineApp  # here: the UI modules load only in the tests that use them

    factory = FakeSourceFactory(*runs)
    kwargs.setdefault("root", str(Path(entry).parent))  # the recorded reports name files from the entry's folder
    app = SkylineApp(str(entry), source=factory, gpu=gpu or FakeGpu(), clock=fixed_clock, **kwargs)
    return app, factory


def finished(app) -> bool:
    """A report is on screen and no run is under way."""
    return app.live.shown is not None and app.state.run.phase is None


def marked_keys(table) -> list[str]:
    """The keys of a source-row table's rows drawn with the marker (the source cursor's line), top to bottom."""
    return [row.key.value for row in table.ordered_rows
            if table.get_cell(row.key, table.LABEL_COLUMN).plain.startswith("▶")]
