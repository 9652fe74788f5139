"""The client when its worker cannot take a request: the run still ends with exactly one final report, and
neither ``submit`` nor ``cancel`` raises.

The worker here is a stand-in process that closes its end of the request pipe and stays alive, so the
client's liveness check passes and its write fails, every time: the window in which a real worker dies
between that check and the write, held open.
"""

from __future__ import annotations

import queue
import sys

from skyline_tui.config import ProfileConfig
from skyline_tui.worker import protocol as p
from skyline_tui.worker.client import WorkerClient

QUICK = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health=False)


def deaf_worker(tmp_path) -> str:
    """An executable the client starts as its python: it closes the request pipe (argv[3] after ``-c``),
    says so on its own output, and sleeps with the event pipe open, as a worker that died a moment ago
    still looks alive."""
    code = ('import os, sys, time; os.close(int(sys.argv[3])); print("request pipe closed", flush=True); '
            'time.sleep(60)')
    script = tmp_path / "deaf-python"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -c '{code}' \"$@\"\n")
    script.chmod(0o755)
    return str(script)


def drain(events: queue.Queue[p.Event]) -> list[p.Event]:
    seen = []
    while not events.empty():
        seen.append(events.get_nowait())
    return seen


def test_a_request_the_worker_cannot_read_ends_in_one_crash_report(tmp_path, write_entry):
    events: queue.Queue[p.Event] = queue.Queue()
    client = WorkerClient(events.put, python=deaf_worker(tmp_path))
    client.start()
    try:
        while True:  # the worker's own output arrives as log lines without a run
            event = events.get(timeout=60)
            if isinstance(event, p.RunLog) and "request pipe closed" in event.text:
                break
        run_id = client.submit(str(write_entry()), None, QUICK)  # before the fix: BrokenPipeError
        client.cancel(run_id)  # no worker reads it: not an error either
        assert client.alive  # the stand-in lives on: the write failed, not the liveness check
    finally:
        client.close(timeout=0.5)
    seen = drain(events)
    finals = [e for e in seen if isinstance(e, p.RunReport) and e.final]
    # One final report, not a second from the worker's end (close() killed the stand-in after it).
    assert [e.run_id for e in finals] == [run_id]
    error = finals[0].report.error
    assert error is not None and error.kind == "crash" and "could not take the run" in error.message
    assert any(isinstance(e, p.WorkerGone) for e in seen)
