"""Every row of the fault table through the real app, with the real worker (torch in a child process).

Row after row in one app (one worker, a second after the row that kills it): break the healthy entry
point with the row's fixture, re-profile.  The error pane must say what and where (file, line, function,
message) on one screen, the source pane must show the user's line, the last good throughput must stay beside
the error (marked as previous), the keys must still work, restoring the file and pressing r must bring a
fresh report (a fresh worker too, when the fault killed it), no listening socket may be opened, and nothing
may be left running once the app quits.  Path errors (no such file, a directory) never reach the app: the
CLI refuses them.  An out-of-memory above the default batch size is no error: it shows as the bound on the batch size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from app_support import FakeGpu, describe_app, wait_until
from skyline_tui.tui.app import SkylineApp
from skyline_tui.config import ProfileConfig
from skyline_tui.tui.views import format as fmt
from skyline_tui.tui.views.errors import ErrorPane
from skyline_tui.tui.views.help import HelpScreen
from skyline_tui.tui.views.batch import BatchControl
from skyline_tui.tui.views.log import MAX_LOG_LINES, LogPane
from skyline_tui.tui.views.memory import MemorySummary
from skyline_tui.tui.views.source import SourceView
from skyline_tui.tui.views.throughput import ThroughputPane
from skyline_tui.worker.client import WorkerClient

from ..conftest import cli_env
from ..processes import listening_socket_inodes, new_marker, processes_with_marker, socket_inodes_of
from ..reliability_cases import FAULT_TABLE, FAULTS, OOM_ABOVE, OOM_ABOVE_LARGEST_THAT_FITS, Fault

pytestmark = pytest.mark.slow

# One row per error kind (and per way the app handles it): what differs between rows of one kind is the
# worker's classification, message and location, which the headless suite (test_reliability.py) checks on
# every row; the app renders them through the same pane.  Left to the headless suite: "missing provider",
# "bare tensor input" and "wrong input type" (entry_point, as "wrong signature", which has a line and a
# function), and "sys.exit" (exit, as "os._exit", the abrupt one).
SAME_IN_THE_APP = {"missing provider", "bare tensor input", "wrong input type", "sys.exit"}
APP_ROWS = [fault for fault in FAULT_TABLE if Path(fault.path).is_file() and fault.name not in SAME_IN_THE_APP]
PATH_ROWS = [fault for fault in FAULT_TABLE if not Path(fault.path).is_file()]
# Only the throughput: every row's fault strikes in the first iteration, and the panes read only the
# throughput (the other phases would triple each of the three profiles a row makes).
THROUGHPUT_ONLY = ProfileConfig.quick(predictions=False, breakdown=False, memory=False, health=False)
SIZE = (120, 36)
WORKER_START_S = 90  # importing torch on a busy two-core machine; a wait, never an assertion on time


def config_for(fault: Fault) -> ProfileConfig:
    """The quick config, with the row's own command-line flags applied (only --timeout so far)."""
    config = THROUGHPUT_ONLY
    flags = dict(zip(fault.flags[::2], fault.flags[1::2], strict=True))
    if "--timeout" in flags:
        config = config.replace(timeout_s=float(flags.pop("--timeout")))
    assert not flags, f"flags the app test does not know how to apply: {flags}"
    return config


def screen_text(app, widget=None) -> str:
    """What the user sees: the screen now on top (or only ``widget``'s part of it), as plain text lines."""
    strips = app.screen._compositor.render_strips()
    if widget is None:
        return "\n".join(strip.text for strip in strips)
    region = widget.region
    return "\n".join(strip.crop(region.x, region.right).text for strip in strips[region.y:region.bottom])


def flat(text: str) -> str:
    """Whitespace collapsed, so a message wrapped at a space still matches."""
    return " ".join(text.split())


class Watch:
    """The test's processes (found by marker) and the socket check, sampled while the app runs."""

    def __init__(self, marker: str):
        self.marker = marker
        self.seen: set[int] = set()

    def check_sockets(self) -> None:
        listening = listening_socket_inodes()
        for pid in [os.getpid(), *processes_with_marker(self.marker)]:
            self.seen.add(pid)
            assert not (socket_inodes_of(pid) & listening), f"process {pid} listens on a socket"

    async def until(self, pilot, predicate, timeout: float, app: Optional[SkylineApp] = None) -> None:
        """Wait for ``predicate``, looking at sockets every few steps on the way."""
        steps = [0]

        def probe() -> bool:
            steps[0] += 1
            if steps[0] % 10 == 1:
                self.check_sockets()
            return predicate()

        await wait_until(pilot, probe, timeout=timeout, explain=(lambda: describe_app(app)) if app else None)

    async def nothing_left(self) -> None:
        import asyncio

        for _ in range(250):  # the worker is reaped on close; its run child dies with it
            if not processes_with_marker(self.marker):
                return
            await asyncio.sleep(0.02)
        assert processes_with_marker(self.marker) == [], "processes left behind after the app quit"


@pytest.fixture
def watch(monkeypatch) -> Watch:
    marker = new_marker()
    monkeypatch.setenv("SKYLINE_TEST_MARKER", marker)  # the worker and its run children inherit it
    return Watch(marker)


def idle_with_report(app: SkylineApp) -> bool:
    return app.state.run.phase is None and app.live.shown is not None and app.live.shown.throughput is not None


async def keys_still_work(pilot, app: SkylineApp) -> None:
    await pilot.press("question_mark")
    assert isinstance(app.screen, HelpScreen)
    assert "skyline-tui keys" in screen_text(app)
    await pilot.press("escape")
    assert not isinstance(app.screen, HelpScreen)
    before = app.focused
    await pilot.press("tab")
    assert app.focused is not before
    log = app.query_one(LogPane)
    shown = log.display
    await pilot.press("l")
    assert log.display is not shown
    await pilot.press("l")
    assert log.display is shown


async def test_each_fault_in_one_app_session_explains_itself_and_keeps_the_last_good_report(tmp_path, watch):
    """The rows one after another in one app, as a user editing one project meets them: each row breaks the
    healthy file, is explained, then is fixed with ``r``, and the fresh report is the next row's last good one.
    One worker serves the rows (a second one after the row that kills it), not one per row."""
    shutil.copy(FAULTS / "_base.py", tmp_path / "_base.py")
    entry = tmp_path / "entry.py"
    entry.write_bytes((FAULTS / "healthy.py").read_bytes())
    app = SkylineApp(str(entry), config=THROUGHPUT_ONLY, source=WorkerClient, gpu=FakeGpu(), watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await watch.until(pilot, lambda: idle_with_report(app), timeout=WORKER_START_S, app=app)
        assert app.live.error is None, app.live.error
        watch.check_sockets()  # the worker is up and warm now
        for fault in APP_ROWS:
            try:
                await break_explain_and_fix(fault, entry, app, pilot, watch)
            except AssertionError as failure:
                failure.add_note(f"in the fault row {fault.name!r}")
                raise
    await watch.nothing_left()
    assert len(watch.seen) >= 2  # the worker was looked at, not just this process


async def break_explain_and_fix(fault: Fault, entry: Path, app: SkylineApp, pilot, watch: Watch) -> None:
    good_run = app.current_run
    good_rate = fmt.rate(app.live.shown.throughput.samples_per_second)

    entry.write_bytes((FAULTS / fault.entry).read_bytes())
    app.config = config_for(fault)
    app.request_profile("test")
    await watch.until(pilot, lambda: app.live.error_run is not None and app.live.error_run > good_run
                      and app.state.run.phase is None, timeout=60, app=app)
    error = app.live.error
    assert error.kind == fault.kind, error

    # What and where, on the one screen, in the error pane (the fixture's own name, the entry's here).
    pane = app.query_one(ErrorPane)
    assert pane.display
    seen = flat(screen_text(app, pane))  # only what is visible without scrolling
    shown = flat(pane.query_one("#error-text").render().plain)
    assert fault.message.replace(fault.entry, entry.name) in seen, shown
    expected_line = fault.expected_line()
    file = None if fault.file is None else entry.name if fault.file == fault.entry else fault.file
    if file is not None:
        where = f"{file}:{expected_line}" if expected_line else file
        assert where in seen, shown
    if fault.function is not None:
        assert f"in {fault.function}" in seen, shown
    assert "skyline_tui/" not in shown, "our own frames leaked into the user's error"

    # The code that was profiled, and the user's line in it, on screen and marked.
    source = app.query_one(SourceView)
    first_line = (FAULTS / fault.entry).read_text(errors="replace").splitlines()[0]
    assert first_line[:20] in screen_text(app, source)
    if expected_line is not None:
        assert (source.file, source.cursor) == (file, expected_line)
        assert source._error_line == expected_line
        top = source.scroll_offset.y
        assert top < expected_line <= top + source.scrollable_content_region.height
        line_text = (FAULTS / fault.file).read_text(errors="replace").splitlines()[expected_line - 1]
        shown_source = screen_text(app, source)
        assert line_text.strip()[:20] in shown_source
        assert f"{expected_line}✗ " in shown_source  # marked in the gutter, colour or not

    # The last good report stays beside the error, labelled as the previous run's.
    throughput = app.query_one(ThroughputPane)
    assert app.live.run_of("throughput") == good_run
    assert "Throughput · previous run" in screen_text(app, throughput)
    assert f"{good_rate} samples/s" in screen_text(app, throughput)
    assert "last good report" in seen

    await keys_still_work(pilot, app)
    watch.check_sockets()

    # Nothing is lost: fixing the file and pressing r brings a fresh report (and a fresh worker if
    # the fault took the worker down).
    failed_run = app.current_run
    entry.write_bytes((FAULTS / "healthy.py").read_bytes())
    app.config = THROUGHPUT_ONLY
    await pilot.press("r")
    await watch.until(pilot, lambda: app.current_run > failed_run and idle_with_report(app)
                      and app.live.run_of("throughput") == app.current_run, timeout=WORKER_START_S, app=app)
    assert app.live.error is None, app.live.error
    assert not pane.display
    assert "previous run" not in throughput.border_title


async def test_a_flood_of_output_is_viewable_in_the_log_and_never_corrupts_the_channel(tmp_path, watch):
    shutil.copy(FAULTS / "_base.py", tmp_path / "_base.py")
    entry = tmp_path / "flood.py"
    shutil.copy(FAULTS / "flood.py", entry)
    app = SkylineApp(str(entry), config=ProfileConfig.quick(predictions=False, breakdown=False, health=False),
                     source=WorkerClient, gpu=FakeGpu(), watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await watch.until(pilot, lambda: idle_with_report(app) or app.live.error is not None,
                          timeout=WORKER_START_S + 60, app=app)
        assert app.live.error is None, app.live.error  # a printed '{"type": "report"...}' was not a message
        assert app.live.shown.memory is not None, describe_app(app)
        assert f"{fmt.rate(app.live.shown.throughput.samples_per_second)} samples/s" in screen_text(app)

        log = app.query_one(LogPane)
        assert log.line_count <= MAX_LOG_LINES
        await pilot.press("l")
        await wait_until(pilot, lambda: log.display and len(log.lines) > 0)
        lines = [strip.text for strip in log.lines]
        assert len(lines) <= MAX_LOG_LINES
        assert not any("[skyline-tui]" in line for line in lines), "a message was mangled into the log"
        # The log keeps the newest MAX_LOG_LINES lines.  The two pipes interleave by chunks, not by line,
        # so one stream's last chunk may push the other out of the window: every stream still in it must
        # end with its final line, and the window is never empty.
        last_of = {stream: [line for line in lines if line.startswith(stream)] for stream in ("stdout", "stderr")}
        assert last_of["stdout"] or last_of["stderr"]
        if last_of["stdout"]:
            assert last_of["stdout"][-1].startswith("stdout line 1999 ")
        if last_of["stderr"]:
            assert last_of["stderr"][-1] == "stderr line 1999"
        assert lines[-1][:30] in screen_text(app, log)  # the pane shows the newest lines
        await keys_still_work(pilot, app)
        watch.check_sockets()
    await watch.nothing_left()


async def test_out_of_memory_above_the_default_batch_is_recovered_and_shown_as_the_bound(tmp_path, watch):
    shutil.copy(FAULTS / "_base.py", tmp_path / "_base.py")
    entry = tmp_path / OOM_ABOVE.name
    shutil.copy(OOM_ABOVE, entry)
    app = SkylineApp(str(entry), config=ProfileConfig.quick(), source=WorkerClient, gpu=FakeGpu(), watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await watch.until(pilot, lambda: app.live.error is not None or (
            idle_with_report(app) and app.live.shown.predictions is not None), timeout=WORKER_START_S + 60, app=app)
        assert app.live.error is None, app.live.error
        assert not app.query_one(ErrorPane).display
        shown = app.live.shown
        predictions = shown.predictions
        assert predictions.oom_batch_size is not None and predictions.oom_batch_size > OOM_ABOVE_LARGEST_THAT_FITS
        assert shown.batch_size <= predictions.max_batch_size <= OOM_ABOVE_LARGEST_THAT_FITS, predictions
        batch = app.query_one(BatchControl)
        memory = app.query_one(MemorySummary)
        assert f"≤{predictions.max_batch_size}" in screen_text(app, batch)

        # Twice the profiled 4 ran out of memory: past the bound, it does not fit, in both places.
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert app.target_batch_size >= predictions.oom_batch_size, (app.target_batch_size, predictions)
        assert f"at {app.target_batch_size}" in screen_text(app, memory)
        assert "✗ does not fit" in screen_text(app, memory)
        assert "✗ does not fit" in screen_text(app, batch)
        # Down to the bound: fits.
        for _ in range(app.target_batch_size):
            if app.target_batch_size <= predictions.max_batch_size:
                break
            await pilot.press("minus")
        await pilot.pause()
        assert app.target_batch_size == predictions.max_batch_size
        assert f"at {app.target_batch_size}" in screen_text(app, memory)
        assert "✓ fits" in screen_text(app, memory)
        assert "✓ fits" in screen_text(app, batch)
        await keys_still_work(pilot, app)
        watch.check_sockets()
    await watch.nothing_left()


@pytest.mark.parametrize("fault", PATH_ROWS, ids=[f.name for f in PATH_ROWS])
def test_a_path_that_is_not_a_file_is_refused_before_the_app_starts(fault: Fault, tmp_path):
    marker = new_marker()
    result = subprocess.run([sys.executable, "-m", "skyline_tui", fault.path], capture_output=True, text=True,
                            cwd=tmp_path, env={**cli_env(), "SKYLINE_TEST_MARKER": marker}, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert result.stdout == "", "the app drew on the terminal"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("skyline-tui: ") and fault.message in lines[0]
    assert "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr, "the app drew on the terminal"  # Textual draws on stderr
    assert processes_with_marker(marker) == []  # no worker was ever started
