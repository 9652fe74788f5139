"""The worker process through its real client: protocol, warm re-runs, cancellation, crashes, hygiene."""

from __future__ import annotations

import os
import queue
import signal
import time

import pytest

from skyline_tui.config import ProfileConfig
from skyline_tui.worker import protocol as p

from ..conftest import FIXTURES, TINY_ENTRY

FAULTS = FIXTURES / "faults"
QUICK = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health=False)


class Recorder:
    def __init__(self):
        self.events: queue.Queue[p.Event] = queue.Queue()
        self.seen: list[p.Event] = []

    def __call__(self, event: p.Event) -> None:
        self.events.put(event)

    def until(self, predicate, timeout: float = 120.0) -> p.Event:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            self.seen.append(event)
            if predicate(event):
                return event

    def final(self, run_id: int, timeout: float = 120.0) -> p.RunReport:
        return self.until(lambda e: isinstance(e, p.RunReport) and e.final and e.run_id == run_id, timeout)




def test_messages_round_trip_through_the_line_protocol():
    request = p.ProfileRequest(run_id=3, entry="/e.py", root=None, config=QUICK)
    assert p.decode(p.encode(request)) == request
    buffer = p.LineBuffer()
    data = p.encode(p.RunLog(run_id=1, stream="stdout", text="a\nb")) + p.encode(p.RunStarted(run_id=2))
    assert buffer.feed(data[:7]) == []
    lines = buffer.feed(data[7:])
    assert [p.decode(line) for line in lines] == [p.RunLog(run_id=1, stream="stdout", text="a\nb"),
                                                   p.RunStarted(run_id=2)]
    with pytest.raises(p.ProtocolError):
        p.decode(b'{"type": "nonsense"}')


def test_a_run_streams_phases_then_one_final_report(worker, write_entry):
    client, events = worker
    run_id = client.submit(str(write_entry()), None, QUICK)
    final = events.final(run_id)
    assert final.report.error is None
    assert final.report.throughput is not None
    kinds = [(type(e).__name__, getattr(e, "phase", None))
             for e in events.seen if getattr(e, "run_id", run_id) == run_id]
    assert ("RunStarted", None) in kinds
    assert kinds.index(("RunProgress", "load")) < kinds.index(("RunReport", "load")) \
        < kinds.index(("RunProgress", "throughput")) < kinds.index(("RunReport", "throughput"))
    assert sum(1 for e in events.seen if isinstance(e, p.RunReport) and e.final) == 1


def test_the_warm_worker_reloads_edited_code_on_every_run(worker, write_entry):
    client, events = worker
    entry = write_entry(TINY_ENTRY.replace("import torch\n", "import torch\nimport note\nprint(note.TEXT)\n"),
                        note="TEXT = 'first version'")
    first = client.submit(str(entry), None, QUICK)
    events.final(first)
    (entry.parent / "note.py").write_text("TEXT = 'second version'\n")
    second = client.submit(str(entry), None, QUICK)
    assert events.final(second).report.error is None
    logs = "".join(e.text for e in events.seen if isinstance(e, p.RunLog) and e.run_id == second)
    assert "second version" in logs and "first version" not in logs
    assert client.alive  # the same worker served both runs


def test_a_new_submit_cancels_the_running_one(worker):
    client, events = worker
    looping = client.submit(str(FAULTS / "infinite_loop.py"), None, QUICK)
    events.until(lambda e: isinstance(e, p.RunProgress) and e.run_id == looping and e.phase == "throughput")
    healthy = client.submit(str(FAULTS / "healthy.py"), None, QUICK)
    cancelled = events.final(looping)
    assert cancelled.report.error is not None and cancelled.report.error.kind == "cancelled"
    assert events.final(healthy).report.error is None


def test_user_output_arrives_as_log_lines_and_never_as_messages(worker):
    client, events = worker
    run_id = client.submit(str(FAULTS / "flood.py"), None, QUICK)
    final = events.final(run_id)
    assert final.report.error is None
    stdout = "".join(e.text for e in events.seen if isinstance(e, p.RunLog) and e.stream == "stdout")
    stderr = "".join(e.text for e in events.seen if isinstance(e, p.RunLog) and e.stream == "stderr")
    assert '{"type": "report", "final": true}' in stdout
    assert "stdout line 1999" in stdout and "stderr line 1999" in stderr


def test_killing_the_worker_ends_the_run_with_a_crash_report(worker):
    client, events = worker
    run_id = client.submit(str(FAULTS / "infinite_loop.py"), None, QUICK)
    events.until(lambda e: isinstance(e, p.RunProgress) and e.run_id == run_id and e.phase == "throughput")
    os.kill(client.pid, signal.SIGKILL)
    final = events.final(run_id)
    assert final.report.error is not None and final.report.error.kind == "crash"
    assert final.report.throughput is None
    events.until(lambda e: isinstance(e, p.WorkerGone))
    # The next submit starts a fresh worker.
    again = client.submit(str(FAULTS / "healthy.py"), None, QUICK)
    assert events.final(again).report.error is None
