"""``skyline-tui run SCRIPT`` with a terminal: the live view, around the run the headless path makes.

Kept apart from run_app.py so the app takes any supervisor (tests pass the real one with their own
options) and this module alone turns the command line into one.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

from skyline_tui.run import command
from skyline_tui.run.launcher import EventSink, RunOptions
from skyline_tui.tui.run_app import RunApp, host_ram_bytes

SIGNAL_GRACE_S = 15.0


def supervisor_for(args: argparse.Namespace, notes: io.StringIO) -> Callable[
        [EventSink, Callable[[subprocess.Popen[bytes]], None]], Optional[command.Outcome]]:
    """The headless path's run (events file, summary, history), with the script's output captured for the
    log pane; what it would print on stderr (a store it cannot write) goes to ``notes``, not over the screen."""
    target = command.target_of(args)

    def supervise(on_event: EventSink, on_started: Callable[[subprocess.Popen[bytes]], None]) -> \
            Optional[command.Outcome]:
        outcome = command.supervise(args, command.summary_builder(target), [on_event],
                                    RunOptions(capture_output=True), notes, on_started=on_started)
        if outcome is None:  # refused before it started (--events cannot be written): the view says why
            raise RuntimeError(notes.getvalue().strip().removeprefix("skyline-tui: "))
        return outcome

    return supervise


def gpu_total_bytes() -> Optional[int]:
    """The GPU's memory through NVML (the status bar's reader), on the machine's only GPU; None without."""
    from skyline_tui.tui.gpu import GpuMonitor

    monitor = GpuMonitor()
    try:
        return monitor.sample(None).memory_total_bytes
    finally:
        monitor.close()


def build_app(args: argparse.Namespace, notes: io.StringIO) -> RunApp:
    target = command.target_of(args)
    root = Path(command.project_root_of(target))
    return RunApp(target.script or "", target.shown, root, supervisor_for(args, notes),
                  health_schedule=health_schedule(args), host_ram_bytes=host_ram_bytes(), gpu_total=gpu_total_bytes)


def health_schedule(args: argparse.Namespace) -> Optional[str]:
    """How often per-layer health is sampled, in words for the layers pane; None: not at all (--no-health)."""
    if args.no_health:
        return None
    if args.health_every:
        return "every step" if args.health_every == 1 else f"every {args.health_every} steps"
    return "as often as 5 % of the run allows"  # run/health_budget.py's default


def run_live(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Until the user quits; the exit status is the script's (as the headless run returns it)."""
    refused = command.check_target(args, parser, sys.stderr)
    if refused is not None:
        return refused
    from skyline_tui.tui.shutdown import ExitOnSignals

    notes = io.StringIO()
    app = build_app(args, notes)

    def request_exit(code: int) -> None:
        loop = app._loop  # set while the app runs; call_soon_threadsafe is safe from a signal handler
        if loop is None:
            raise RuntimeError("the app is not running")
        loop.call_soon_threadsafe(app.leave_on_signal, code - 128)

    # The script gets the signal and the time to end and be recorded; past the grace, it is killed.
    with ExitOnSignals(request_exit, app.kill_script, grace_s=SIGNAL_GRACE_S) as signals:
        app.run()
    if notes.getvalue():
        sys.stderr.write(notes.getvalue())  # after the screen is gone: readable
    if app.exit_status is not None:
        return app.exit_status
    return signals.exit_code or 1
