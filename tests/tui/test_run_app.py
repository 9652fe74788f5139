"""The live run view driven by Pilot on real training scripts, run as ``skyline-tui run`` runs them (the real
launcher, child and hooks, the real history store).  What the screen must say is checked against what the
script itself printed, read from the events file the run writes (``--events``) or the log pane."""

from __future__ import annotations

import io
import os
import json
import re
from pathlib import Path

import pytest

from app_support import text_of, wait_until
from run_support import TRAIN, line_of
from skyline_tui.history.store import History
from skyline_tui.run import command
from skyline_tui.tui.run_launch import build_app
from skyline_tui.tui.run_state import ENDED, STOPPING

REPO = Path(__file__).resolve().parents[2]
RUN_S = 180.0  # a bound on waiting for a whole run on a busy 2-core machine, not a speed claim


@pytest.fixture(autouse=True)
def child_imports_this_tree(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("SKYLINE_TUI_HISTORY", raising=False)


def app_for(*argv: str):
    parser = command.build_parser()
    return build_app(command.parse(parser, list(argv)), io.StringIO())


def pane_text(pane) -> str:
    """What a pane's text widgets show (a container's own lines are only its frame)."""
    from textual.widgets import Static

    return "\n".join(text_of(widget) for widget in pane.query(Static))


def output_of(events_path: Path) -> str:
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    return "".join(e["text"] for e in events if e["type"] == "output" and e["stream"] == "stdout")


def steps_in(events_path: Path) -> int:
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    return max((e["index"] for e in events if e["type"] == "step"), default=0)


async def test_a_finished_run_stays_on_screen_with_its_steps_loss_layers_and_nan_line(tmp_path):
    from skyline_tui.tui.views.health import HealthPane
    from skyline_tui.tui.views.log import LogPane
    from skyline_tui.tui.views.run_panes import LossPane, StepsPane
    from skyline_tui.tui.views.source import SourceView

    events = tmp_path / "events.jsonl"
    app = app_for("--no-history", "--health-every", "1", "--events", str(events),
                  str(TRAIN / "nan_at_step.py"), "--nan-at", "5", "--steps", "7")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.view.phase == ENDED and app.exit_status is not None, timeout=RUN_S)
        printed = output_of(events)
        losses = re.findall(r"^STEP \d+ LOSS (\S+)$", printed, re.MULTILINE)
        assert len(losses) == 7 and losses[4] == "nan"
        await pilot.pause(0.1)
        steps_text = app.query_one(StepsPane).border_title + pane_text(app.query_one(StepsPane))
        assert "7 steps" in steps_text and "final" in steps_text
        loss_text = pane_text(app.query_one(LossPane))
        assert f"{float(losses[0]):.4g} → {float(losses[3]):.4g}" in loss_text  # the last finite loss: step 4
        assert "3 not finite" in loss_text  # steps 5, 6, 7 printed nan
        assert "backward passes" not in loss_text  # one a step: the loss is the loss, nothing to say
        log_lines = [strip.text for strip in app.query_one(LogPane).lines]
        assert f"STEP 7 LOSS {losses[6]}" in log_lines
        assert app.exit_status == 0 and app.is_running  # over, and still on screen until q
        health = app.query_one(HealthPane)
        shown = " ".join(pane_text(health).split())  # the banner wraps
        # Located at the Blowup layer ("2"), at the line of the script that runs the model.
        nan_line = line_of("nan_at_step.py", "mse_loss(model(x)")
        assert f"NaN/Inf first at step 5: tests/fixtures/train/nan_at_step.py:{nan_line} in 2 (forward)" in shown
        assert health.rows[0].flags  # flagged first
        source = app.query_one(SourceView)
        await pilot.press("e")
        await wait_until(pilot, lambda: source.cursor == nan_line)
        health.focus()
        await pilot.press("enter")  # the first layer's line: where the model is called
        flagged = health.rows[0]
        assert flagged.line is not None
        await wait_until(pilot, lambda: source.cursor == flagged.line)
        await pilot.press("q")  # over: no question
        await wait_until(pilot, lambda: not app.is_running)
    assert app.return_value == 0


async def test_the_metrics_pane_shows_the_last_value_the_script_logged_and_n_p_switch_metrics(tmp_path):
    from skyline_tui.tui.views.run_panes import MetricsPane

    events = tmp_path / "events.jsonl"
    script = REPO / "tests" / "fixtures" / "experiments" / "train.py"  # logs loss, and val_accuracy every 4 steps
    app = app_for("--no-history", "--events", str(events), str(script), "--steps", "12")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.view.phase == ENDED and app.exit_status is not None, timeout=RUN_S)
        await pilot.pause(0.1)
        # What the script printed of each call to track.log: TRACKED {"step", "name", "value"}.
        tracked = [json.loads(line.removeprefix("TRACKED ")) for line in output_of(events).splitlines()
                   if line.startswith("TRACKED ")]
        last = {record["name"]: record for record in tracked}  # the last of each name
        assert list(last) == ["loss", "val_accuracy"] and last["val_accuracy"]["step"] == 11

        pane = app.query_one(MetricsPane)

        def shows(name: str) -> bool:
            record = last[name]
            return (f"· {name}" in str(pane.border_title)
                    and f"last {record['value']:.4g} @ step {record['step']}" in pane_text(pane))

        assert pane.display and shows("loss")  # the first logged, until a key chooses
        await pilot.press("n")
        await wait_until(pilot, lambda: shows("val_accuracy"))
        assert str(pane.border_title).startswith("Metrics 2/2")
        await pilot.press("p")
        await wait_until(pilot, lambda: shows("loss"))
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running)


async def test_q_asks_then_sends_ctrl_c_the_script_s_handler_runs_and_the_run_is_recorded(tmp_path):
    from skyline_tui.tui.views.confirm import ConfirmScreen

    events, store = tmp_path / "events.jsonl", tmp_path / "history.db"
    app = app_for("--history", str(store), "--events", str(events), str(TRAIN / "keyboard_interrupt.py"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: "READY" in output_of(events) and app.view.steps >= 5, timeout=RUN_S)
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # no: the run goes on
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.view.phase != STOPPING and app.is_running
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, timeout=RUN_S)
    assert app.return_value == 3 == app.exit_status  # the script's own handler chose 3
    taken = int(re.search(r"INTERRUPTED steps=(\d+)", output_of(events)).group(1))  # type: ignore[union-attr]
    with History(store) as history:
        runs = history.runs(kind="train")
        assert len(runs) == 1
        summary = history.summary(runs[0]["id"])
    assert summary.steps == taken and summary.exit_code == 3


async def test_a_sigterm_to_skyline_tui_reaches_the_script_and_the_run_is_still_recorded(tmp_path):
    import signal

    events, store = tmp_path / "events.jsonl", tmp_path / "history.db"
    app = app_for("--history", str(store), "--events", str(events), str(TRAIN / "keyboard_interrupt.py"))
    async with app.run_test(size=(100, 30)) as pilot:
        # Until step 5 is in the events, not only printed: the script writes its steps every 50 ms, and a signal
        # that kills it (SIGTERM, unhandled) loses those not written yet (a CI run recorded 3 after READY).
        await wait_until(pilot, lambda: "READY" in output_of(events) and steps_in(events) >= 5, timeout=RUN_S)
        app.leave_on_signal(signal.SIGTERM)  # what run_launch's handler calls on the app's loop
        await wait_until(pilot, lambda: not app.is_running, timeout=RUN_S)
    assert app.exit_status == 128 + signal.SIGTERM  # the script did not catch it: a shell would say 143
    assert "INTERRUPTED" not in output_of(events)  # SIGTERM, not the Ctrl-C its handler catches
    with History(store) as history:
        runs = history.runs(kind="train")
        assert len(runs) == 1
        summary = history.summary(runs[0]["id"])
    assert summary.exit_code == -signal.SIGTERM and summary.steps >= 5  # as many as the events had when killed


def test_without_a_terminal_run_stays_headless_and_never_imports_textual(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "hello.py"
    script.write_text("print('HELLO')\n")
    probe = ("import sys\nfrom skyline_tui import cli\nstatus = cli.main(['run', '--no-history', '-q', sys.argv[1]])\n"
             "print('TEXTUAL', any(name.split('.')[0] in ('textual', 'rich') for name in sys.modules), status)\n")
    result = subprocess.run([sys.executable, "-c", probe, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=RUN_S,
                            stdin=subprocess.DEVNULL)
    assert result.stdout.splitlines() == ["HELLO", "TEXTUAL False 0"], result.stderr


def test_with_a_terminal_run_opens_the_view_and_q_y_stops_the_script_through_its_handler(tmp_path):
    """The whole path as a user types it, on a pseudo-terminal: ``skyline-tui run`` opens the live view (its
    pane titles on screen), ``q`` asks, ``y`` sends Ctrl-C; the exit status is the one the script's handler chose."""
    import pty
    import signal
    import time

    from run_support import command, environment, read_pty

    pid, master = pty.fork()
    if pid == 0:
        os.chdir(tmp_path)
        os.environ["COLUMNS"], os.environ["LINES"] = "100", "30"
        os.execve(command()[0], command("--no-history", str(TRAIN / "keyboard_interrupt.py")), environment())
    seen, status = b"", None
    deadline = time.monotonic() + RUN_S

    def read_until(marker: bytes) -> None:
        nonlocal seen
        while re.search(marker, seen) is None and time.monotonic() < deadline:
            chunk = read_pty(master, deadline)
            if chunk is None:  # skyline-tui is gone: the asserts below say how
                break
            seen += chunk

    try:
        read_until(rb"pid \d+ \xc2\xb7 step [1-9]\d")  # the status bar past step 10 ("READY" is in the source pane)
        assert b"Steps" in seen and b"Loss" in seen, seen[-2000:]
        time.sleep(0.5)
        os.write(master, b"q")
        read_until(rb"Stop the run\?")
        time.sleep(0.5)  # painted is not yet listening: a key sent within the same millisecond can miss the dialog
        os.write(master, b"y")
        while time.monotonic() < deadline:
            chunk = read_pty(master, deadline)
            if chunk is None:  # the pty closed: skyline-tui is gone
                break
            seen += chunk
    finally:
        while status is None and time.monotonic() < deadline + 30:
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
            time.sleep(0.1)
        if status is None:
            os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(master)
    assert b"Stop the run?" in seen
    assert os.waitstatus_to_exitcode(status) == 3, seen[-1500:]  # keyboard_interrupt.py's handler exits 3


async def test_a_run_without_steps_draws_no_bars_in_its_charts(tmp_path):
    """Before its first step, or with none at all, a chart has nothing to draw: a floor line, not the full bars
    a single placeholder value drew (a script that failed at its line 47 showed full ms/step, samples/s and
    loss bars over "0 steps")."""
    from textual.widgets import Sparkline

    from skyline_tui.tui.views.run_panes import LossPane, StepsPane

    app = app_for("--no-history", str(TRAIN / "never_trains.py"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.view.phase == ENDED and app.exit_status is not None, timeout=RUN_S)
        await pilot.pause(0.1)
        # Why, not "N/A/step": the 5 forward passes the script made (it prints "PREDICTED 5"), none trained.
        assert "0 steps  5 forward passes ran without gradient" in pane_text(app.query_one(StepsPane))
        charts = [*app.query_one(StepsPane).query(Sparkline), *app.query_one(LossPane).query(Sparkline)]
        drawn = [text_of(chart) for chart in charts]
    assert len(drawn) == 3 and all(text and set(text) == {"▁"} for text in drawn), drawn
