"""The worker's relay of a run child's pipes, with the real ``Worker`` and real pipes: the test writes what a run
child would, plays the order in which one round of the worker's ``select`` is handled, and forks a stand-in
child where the run must end."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import time
from typing import Optional

import pytest

from skyline_tui.config import ProfileConfig
from skyline_tui.report import Report
from skyline_tui.worker import protocol as p
from skyline_tui.worker.output import RunOutput
from skyline_tui.worker.server import Run, Worker


@pytest.fixture
def make_relay():
    """A worker with one run whose message, stdout, stderr and stack pipes are open on both ends; the run's
    process is ``pid`` (default: this one, for tests that never end the run)."""
    opened: list[int] = []
    workers: list[Worker] = []

    def pipe() -> tuple[int, int]:
        read, write = os.pipe()
        opened.extend((read, write))
        return read, write

    def make(pid: int = os.getpid(), output: Optional[dict[str, int]] = None):
        requests, _ = pipe()
        events, events_w = pipe()
        worker = Worker(requests, events_w)
        workers.append(worker)
        (msg, msg_w), (out, out_w), (err, err_w), (stack, _) = pipe(), pipe(), pipe(), pipe()
        request = p.ProfileRequest(run_id=1, entry="entry.py", root=None, config=ProfileConfig.quick())
        streams = {out: "stdout", err: "stderr"}
        worker.run = Run(request=request, pid=pid, deadline=time.monotonic() + 60, messages=msg,
                         streams=streams, stack=stack, output=RunOutput(streams, **(output or {})))
        for fd in (msg, out, err, stack, events):
            os.set_blocking(fd, False)
        for fd in (msg, out, err, stack):
            worker.selector.register(fd, selectors.EVENT_READ, "child")
        return worker, {"msg": msg_w, "out": out_w, "err": err_w}, {"msg": msg, "err": err}, events

    yield make
    for worker in workers:
        worker.selector.close()
    for fd in opened:
        with contextlib.suppress(OSError):  # the worker closes a run's pipes when the run ends
            os.close(fd)


@pytest.fixture
def relay(make_relay):
    return make_relay()


def relayed(events: int) -> list[object]:
    buffer, out = p.LineBuffer(), []
    while True:
        try:
            data = os.read(events, 65536)
        except BlockingIOError:
            return out
        out.extend(p.decode(line) for line in buffer.feed(data))


def test_a_stream_a_report_already_drained_stays_watched(relay):
    # One select round found the message pipe and stderr ready.  The report is handled first and relays what
    # was printed before it, draining stderr; stderr's own turn in the same round then reads nothing.  That is
    # not the end of the stream: the worker must keep reading it, or a child that prints on blocks once the
    # pipe is full, until the run times out (likely what stopped a CI run of the flood test after 60 s in a
    # print to stderr).
    worker, write, read, events = relay
    os.write(write["err"], b"printed before the report\n")
    report = p.RunReport(run_id=1, report=Report(entry_point="entry.py", project_root=""), phase="throughput",
                         final=False)
    os.write(write["msg"], p.encode(report))
    worker._read_child(read["msg"])
    worker._read_child(read["err"])  # the stale half of the same round: nothing to read now
    assert read["err"] in worker.selector.get_map(), "stderr was dropped from the watched pipes"
    os.write(write["err"], b"printed after it\n")
    for key, _ in worker.selector.select(timeout=1.0):
        worker._read_child(key.fd)
    texts = [event.text for event in relayed(events) if isinstance(event, p.RunLog)]
    assert texts == ["printed before the report\n", "printed after it\n"], texts


def test_a_stream_at_its_end_is_no_longer_watched(relay):
    worker, write, read, events = relay
    os.write(write["err"], b"last words\n")
    os.close(write["err"])
    write["err"] = os.open(os.devnull, os.O_WRONLY)  # the fixture closes what it opened: keep a number to close
    worker._read_child(read["err"])
    assert read["err"] in worker.selector.get_map()  # data came: the stream goes on
    worker._read_child(read["err"])  # end of file
    assert read["err"] not in worker.selector.get_map()
    assert [event.text for event in relayed(events) if isinstance(event, p.RunLog)] == ["last words\n"]


def test_output_held_back_past_the_limit_comes_before_the_run_s_last_report(make_relay):
    # Past the per-run output limit a stream keeps only its newest lines, sent at the next report.  When the
    # run ends without one of its own (cancelled here; a crash, a timeout, an exception alike), the worker's
    # failure report is the last word: those lines, a traceback, the line that hung, must come before it.
    pid = os.fork()
    if pid == 0:  # a stand-in for the run child: its own group, as child_main makes it
        os.setpgid(0, 0)
        signal.pause()
        os._exit(0)
    worker, write, read, events = make_relay(pid, output={"limit": 10, "tail": 1024})
    os.write(write["err"], b"over the limit at once\n")
    worker._read_child(read["err"])  # relayed: the limit is reached with it
    os.write(write["err"], b"Traceback (most recent call last):\nValueError: the last words\n")
    worker._read_child(read["err"])  # held back
    worker._stop_run("cancelled", "cancelled: a newer profile was requested")
    sent = relayed(events)
    final = next(i for i, event in enumerate(sent) if isinstance(event, p.RunReport) and event.final)
    before = "".join(event.text for event in sent[:final] if isinstance(event, p.RunLog))
    assert "ValueError: the last words" in before, sent
    assert not [event for event in sent[final + 1:] if isinstance(event, p.RunLog)], sent
