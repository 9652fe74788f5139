"""The report is handed over (and written) the moment the final report arrives, before the worker is shut
down: ordering, not timing, is what these tests pin."""

from __future__ import annotations

import json
import threading

from skyline_tui.commands import profile
from skyline_tui.config import ProfileConfig
from skyline_tui.report import Report
from skyline_tui.worker import protocol as p
from skyline_tui.worker.client import WorkerClient, profile_once

from ..conftest import FIXTURES

HEALTHY = str(FIXTURES / "faults" / "healthy.py")
THROUGHPUT_ONLY = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health=False)


def test_the_final_report_is_handed_over_while_the_worker_is_still_up():
    order: list[str] = []
    lock = threading.Lock()

    def on_event(event: p.Event) -> None:
        if isinstance(event, p.WorkerGone):
            with lock:
                order.append("worker gone")

    def on_final(report: Report) -> None:
        with lock:
            order.append("final report" if report.throughput is not None else "final report without throughput")

    report = profile_once(HEALTHY, None, THROUGHPUT_ONLY, on_event=on_event, on_final=on_final)
    assert report.error is None, report.error
    assert order == ["final report", "worker gone"]


def test_the_cli_report_is_on_disk_before_the_worker_is_told_to_stop(tmp_path, monkeypatch):
    """The worker's request pipe is where shutdown is sent: at that moment the report must be complete."""
    out = tmp_path / "report.json"
    seen_at_shutdown: list[str] = []
    real_shutdown = WorkerClient.shutdown

    def shutdown_after_looking(self: WorkerClient) -> None:
        if not seen_at_shutdown:
            seen_at_shutdown.append(out.read_text() if out.exists() else "")
        real_shutdown(self)

    monkeypatch.setattr(WorkerClient, "shutdown", shutdown_after_looking)
    code = profile.json_command(HEALTHY, None, THROUGHPUT_ONLY, str(out), quiet=True)
    assert code == 0
    on_disk_then = json.loads(seen_at_shutdown[0])
    assert on_disk_then["throughput"]["iteration_ms"] > 0
    assert on_disk_then == json.loads(out.read_text())


def test_an_unwritable_destination_is_a_one_line_error_after_the_run(tmp_path, capsys):
    code = profile.json_command(HEALTHY, None, THROUGHPUT_ONLY, str(tmp_path / "missing" / "report.json"), quiet=True)
    assert code == profile.EXIT_PROFILE_ERROR
    assert "cannot write" in capsys.readouterr().err
