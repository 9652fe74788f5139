"""Profile on save, end to end: the real app, the real watchdog watcher and the real worker, on real file
writes.  Nothing asserts on time: each test waits for the watcher to settle (a sentinel write, then its
quiet signal) and for every submitted run to end, then counts."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time

import pytest

from app_support import FakeGpu, text_of, wait_until
from skyline_tui.tui.app import SkylineApp
from skyline_tui.config import ProfileConfig
from skyline_tui.tui.views.breakdown import BreakdownTable
from skyline_tui.tui.views.errors import ErrorPane
from skyline_tui.tui.views.status import StatusBar
from skyline_tui.tui.views.throughput import ThroughputPane
from skyline_tui.worker import protocol as p
from skyline_tui.worker.client import WorkerClient

from ..conftest import TINY_ENTRY
from ..processes import new_marker, processes_with_marker
from ..watch_support import settle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the worker needs torch"),
]

THROUGHPUT_ONLY = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health=False)
RUN_TIMEOUT = 90.0


def entry_text(batch_size: int, extra: str = "") -> str:
    text = TINY_ENTRY.replace("batch_size=4", f"batch_size={batch_size}")
    return text.replace("import torch.nn as nn\n", f"import torch.nn as nn\n{extra}", 1)


class RecordingClients:
    """The app's source factory: real WorkerClients that also record every event and submitted run."""

    def __init__(self) -> None:
        self.events: list[p.Event] = []
        self.submitted: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, on_event):
        recorder = self

        def record(event: p.Event) -> None:
            with recorder._lock:
                recorder.events.append(event)
            on_event(event)

        class Client(WorkerClient):
            def submit(self, entry, root, config):
                run_id = super().submit(entry, root, config)
                with recorder._lock:
                    recorder.submitted.append(run_id)
                return run_id

        return Client(record)

    def finals(self) -> dict[int, p.RunReport]:
        with self._lock:
            return {e.run_id: e for e in self.events if isinstance(e, p.RunReport) and e.final}

    def logs(self, run_id: int) -> str:
        with self._lock:
            return "".join(e.text for e in self.events if isinstance(e, p.RunLog) and e.run_id == run_id)


@pytest.fixture
def live_app(monkeypatch, write_entry):
    """make(config=..., watch=...) -> (app, clients, entry path); no process may outlive the test."""
    marker = new_marker()
    monkeypatch.setenv("SKYLINE_TEST_MARKER", marker)

    def make(config: ProfileConfig = THROUGHPUT_ONLY, watch: bool = True, app_class=SkylineApp, **siblings):
        entry = write_entry(entry_text(4, siblings.pop("extra", "")), **siblings)
        clients = RecordingClients()
        app = app_class(str(entry), config=config, source=clients, gpu=FakeGpu(), watch=watch)
        return app, clients, entry

    yield make
    deadline = time.monotonic() + 10
    while processes_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_marker(marker) == [], "the app left processes behind"


async def all_runs_ended(pilot, app: SkylineApp, clients: RecordingClients) -> None:
    """Wait until every burst the watcher reported became a request, and every request has its final report."""
    if app.save_watcher.watcher is not None:
        await asyncio.to_thread(settle, app.save_watcher.watcher, app.project_root)
        watcher = app.save_watcher.watcher
        await wait_until(pilot, lambda: app.state.saves_seen == watcher.changes_reported, timeout=RUN_TIMEOUT)

    def ended() -> bool:
        submitting = any(w.group == "submit" and not w.is_finished for w in app.workers)
        finals = clients.finals()
        return not submitting and all(run in finals for run in clients.submitted)

    await wait_until(pilot, ended, timeout=RUN_TIMEOUT)


async def first_profile(pilot, app: SkylineApp, clients: RecordingClients) -> p.RunReport:
    await wait_until(pilot, lambda: 1 in clients.finals() and app.save_watcher.watching, timeout=RUN_TIMEOUT)
    first = clients.finals()[1]
    assert first.report.error is None, first.report.error
    return first


def completed_runs(clients: RecordingClients, after: int) -> list[p.RunReport]:
    """Final reports of runs after ``after`` that were not cancelled by a newer request."""
    return [final for run, final in sorted(clients.finals().items())
            if run > after and not (final.report.error and final.report.error.kind == "cancelled")]


async def test_fifty_saves_in_two_seconds_end_in_one_profile_of_the_final_content(live_app):
    app, clients, entry = live_app()
    # Fifty saves 40 ms apart are one burst while no gap between two of them outlasts the quiet that ends one.  On
    # loaded CI machines this thread was descheduled past the app's 80 ms (a profile started between two writes,
    # read the file truncated by the next and failed).  The rule under test is the coalescing, not the quiet's
    # length: 2 s keeps the premise, and the longest gap is said if it did not.  (The 2 s had not reached files
    # closed after writing, which kept 80 ms: two profiles on a 90 ms gap, until watch.py took it for every event.)
    app.save_watcher.debounce_s = 2.0
    async with app.run_test(size=(100, 30)) as pilot:
        await first_profile(pilot, app, clients)
        written: list[float] = []

        def save_fifty_times() -> None:
            for i in range(50):
                entry.write_text(entry_text(5 + i))
                written.append(time.monotonic())
                time.sleep(0.04)

        await asyncio.to_thread(save_fifty_times)
        await all_runs_ended(pilot, app, clients)
        completed = completed_runs(clients, after=1)
        longest = max(b - a for a, b in zip(written, written[1:]))
        assert len(completed) == 1, ([(f.run_id, f.report.error) for f in completed], f"longest gap {longest:.2f} s")
        assert completed[0].report.error is None, completed[0].report.error
        assert completed[0].report.batch_size == 54  # the last write's default
        assert completed[0].run_id == max(clients.submitted)
        await wait_until(pilot, lambda: app.live.shown.batch_size == 54)
        assert app.live.error is None


async def test_a_save_mid_profile_cancels_it_and_profiles_the_new_content(live_app):
    slow = "import time\n"
    app, clients, entry = live_app(extra=slow)
    async with app.run_test(size=(100, 30)) as pilot:
        await first_profile(pilot, app, clients)
        # A profile that cannot end by itself: each iteration sleeps a long time.
        entry.write_text(entry_text(6, slow).replace("optimizer.step()", "optimizer.step()\n        time.sleep(60)"))
        await wait_until(pilot, lambda: len(clients.submitted) >= 2 and app.state.run.phase == "throughput",
                         timeout=RUN_TIMEOUT)
        stuck = clients.submitted[-1]
        entry.write_text(entry_text(7, slow))
        await all_runs_ended(pilot, app, clients)
        assert clients.finals()[stuck].report.error.kind == "cancelled"
        completed = completed_runs(clients, after=stuck)
        assert [f.report.batch_size for f in completed] == [7]
        assert app.live.error is None  # the cancellation is not shown as a failure


async def test_a_save_by_rename_and_an_edited_sibling_module_reprofile_fresh_code(live_app):
    app, clients, entry = live_app(extra="import note\nprint(note.TEXT)\n", note="TEXT = 'first version'")
    async with app.run_test(size=(100, 30)) as pilot:
        await first_profile(pilot, app, clients)
        assert "first version" in clients.logs(1)
        # An IDE's save: write a temp file beside the original, then move it over.
        temp = entry.with_name("entry.py.tmp-4242")
        temp.write_text(entry_text(9, "import note\nprint(note.TEXT)\n"))
        temp.replace(entry)
        await all_runs_ended(pilot, app, clients)
        renamed = completed_runs(clients, after=1)
        assert [f.report.batch_size for f in renamed] == [9]
        # Only the sibling changes: the warm worker must import it afresh.
        (entry.parent / "note.py").write_text("TEXT = 'second version'\n")
        await all_runs_ended(pilot, app, clients)
        edited = completed_runs(clients, after=renamed[0].run_id)
        assert len(edited) == 1 and edited[0].report.error is None
        logs = clients.logs(edited[0].run_id)
        assert "second version" in logs and "first version" not in logs
        assert app.state.saves_seen == 2


async def test_ignored_files_do_not_reprofile(live_app):
    app, clients, entry = live_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await first_profile(pilot, app, clients)
        folder = entry.parent
        for name in (".entry.py.swp", "entry.py~", "4913", "notes.md"):
            (folder / name).write_text("x")
        for sub in ("__pycache__", ".git", ".venv/lib/python3.11/site-packages"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            (folder / sub / "module.py").write_text("x = 1\n")
        entry.read_text()
        await all_runs_ended(pilot, app, clients)
        assert clients.submitted == [1]
        assert app.state.saves_seen == 0


async def test_s_turns_profile_on_save_off_and_on(live_app, tmp_path):
    from skyline_tui.tui.watch import ProjectWatcher

    app, clients, entry = live_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await first_profile(pilot, app, clients)
        assert "on save ✓" in text_of(app.query_one(StatusBar))
        await pilot.press("s")
        await wait_until(pilot, lambda: not app.save_watcher.watching and app.save_watcher.watcher is None)
        assert "on save ✗" in text_of(app.query_one(StatusBar))
        # A second watcher tells when the save has surely been seen; the app's must not act on it.
        probe = ProjectWatcher(str(entry.parent), lambda paths: None, debounce_s=0.05)
        probe.start()
        try:
            entry.write_text(entry_text(11))
            await asyncio.to_thread(settle, probe, entry.parent)
            assert probe.changes_reported == 1
        finally:
            probe.stop()
        for _ in range(5):
            await pilot.pause()
        assert clients.submitted == [1] and app.state.saves_seen == 0
        await pilot.press("s")  # back on: the next save profiles again
        await wait_until(pilot, lambda: app.save_watcher.watching)
        entry.write_text(entry_text(12))
        await all_runs_ended(pilot, app, clients)
        assert [f.report.batch_size for f in completed_runs(clients, after=1)] == [12]


async def test_no_watch_means_saves_do_nothing(live_app):
    app, clients, entry = live_app(watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: 1 in clients.finals(), timeout=RUN_TIMEOUT)
        assert app.save_watcher.watcher is None and not app.save_watcher.watching
        entry.write_text(entry_text(13))
        for _ in range(5):
            await pilot.pause(0.05)
        assert clients.submitted == [1]
        assert "on save ✗" in text_of(app.query_one(StatusBar))


class TitleRecordingApp(SkylineApp):
    """Records, after each report is rendered, what every pane's title says."""

    titles: list

    def _take_report(self, event):
        super()._take_report(event)
        self.titles.append((event.run_id, event.phase, event.final, {
            "throughput": self.query_one(ThroughputPane).border_title,
            "breakdown": self.query_one(BreakdownTable).border_title,
        }))


async def test_panes_say_which_parts_are_fresh_and_a_failed_save_keeps_the_last_good_report(live_app):
    config = ProfileConfig.quick(breakdown=True, memory=False, predictions=False, health=False)
    app, clients, entry = live_app(config=config, app_class=TitleRecordingApp)
    app.titles = []
    async with app.run_test(size=(100, 30)) as pilot:
        await first_profile(pilot, app, clients)
        entry.write_text(entry_text(8))
        await all_runs_ended(pilot, app, clients)
        run = max(clients.submitted)
        seen = {(phase, final): titles for run_id, phase, final, titles in app.titles if run_id == run}
        # The first number of the new run is fresh while the breakdown still shows the previous save...
        assert "previous run" not in seen[("throughput", False)]["throughput"]
        assert "previous run" in seen[("throughput", False)]["breakdown"]
        # ...until the breakdown arrives too.
        assert not any("previous run" in title for title in seen[("done", True)].values())

        # A save that breaks the code: the error beside the last good numbers, marked as older.
        entry.write_text(entry_text(8).replace("def skyline_model_provider():", "def skyline_model_provider(:"))
        await all_runs_ended(pilot, app, clients)
        broken = clients.finals()[max(clients.submitted)]
        assert broken.report.error is not None and broken.report.error.kind != "cancelled"
        await wait_until(pilot, lambda: app.live.error is not None)
        assert app.query_one(ErrorPane).display
        assert app.live.shown.throughput is not None and app.live.shown.batch_size == 8
        assert "previous run" in app.query_one(ThroughputPane).border_title
        assert "samples/s" in text_of(app.query_one(ThroughputPane))
        # Fixing it clears the error.
        entry.write_text(entry_text(10))
        await all_runs_ended(pilot, app, clients)
        await wait_until(pilot, lambda: app.live.error is None and app.live.shown.batch_size == 10)
        assert not app.query_one(ErrorPane).display
