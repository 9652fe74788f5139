"""--trace: one profiled iteration as Chrome Trace Event JSON, parsed back and checked for well-formed
nesting per thread, flows from a line's forward to its backward, and spans against known pauses (sleeps of
known length on known lines).  The export itself is a pure function, checked on hand-made spans first."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

import skyline_tui
from skyline_tui.config import ProfileConfig
from skyline_tui.export.trace import MemorySample, Span, chrome_trace

from ..conftest import FIXTURES

LAYERS = FIXTURES / "ci" / "layers.py"
NETWORK_LINES = {20: "first", 21: "second", 22: ""}  # layers.py line -> the module its forward work runs in
LOSS_LINE = 39
SLEEP_MS = 10.0


def test_hand_made_spans_become_complete_events_in_microseconds_with_flows_and_names():
    line = ("m.py", 3)
    spans = [
        Span("iteration", "iteration", 0, 10_000, tid=7),
        Span("fc [Linear]", "module", 1_000, 4_000, tid=7, args={"module": "fc"}),
        Span("m.py:3 forward", "forward", 1_500, 3_500, tid=7, line=line, args={"file": "m.py", "line": 3}),
        Span("m.py:3 backward", "backward", 5_000, 8_000, tid=7, line=line),
        Span("optimizer.step", "optimizer", 8_500, 9_500, tid=7),
    ]
    trace = chrome_trace(spans, [MemorySample(0, 100), MemorySample(4_000, 300)], "proc",
                         thread_names={7: "training iteration"})
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert [(e["name"], e["ts"], e["dur"]) for e in complete] == [
        ("iteration", 0.0, 10.0), ("fc [Linear]", 1.0, 3.0), ("m.py:3 forward", 1.5, 2.0),
        ("m.py:3 backward", 5.0, 3.0), ("optimizer.step", 8.5, 1.0)]
    start, finish = [e for e in events if e["ph"] in "sf"]
    assert (start["ph"], start["ts"], finish["ph"], finish["ts"], finish["bp"]) == ("s", 2.5, "f", 6.5, "e")
    assert start["id"] == finish["id"]
    assert [e["args"]["bytes"] for e in events if e["ph"] == "C"] == [100, 300]
    names = {e["name"]: e["args"]["name"] for e in events if e["ph"] == "M"}
    assert names == {"process_name": "proc", "thread_name": "training iteration"}


def assert_nested_per_thread(complete: list[dict]) -> None:
    """Every two spans of one thread are disjoint or one holds the other (what Perfetto needs)."""
    by_thread = defaultdict(list)
    for event in complete:
        by_thread[event["tid"]].append(event)
    for events in by_thread.values():
        open_ends: list[float] = []
        for event in sorted(events, key=lambda e: (e["ts"], -e["dur"])):
            while open_ends and open_ends[-1] <= event["ts"]:
                open_ends.pop()
            end = event["ts"] + event["dur"]
            assert not open_ends or end <= open_ends[-1] + 1e-3, f"{event['name']} straddles its parent's end"
            open_ends.append(end)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "iteration.json"
    # One measured iteration: the exported iteration is the one the breakdown reports.
    report = skyline_tui.profile(str(LAYERS), config=ProfileConfig.quick(breakdown_iterations=1), memory=False,
                                 predictions=False, trace=str(path))
    assert report.error is None, report.error
    return report, json.loads(path.read_text())


def test_the_trace_is_well_formed_and_nested(traced):
    _report, trace = traced
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert all(e["ts"] >= 0 and e["dur"] >= 0 for e in complete)
    assert_nested_per_thread(complete)
    (iteration,) = [e for e in complete if e["cat"] == "iteration"]
    assert iteration["dur"] >= SLEEP_MS * 1000  # the iteration sleeps 10 ms after its step
    assert all(iteration["ts"] <= e["ts"] and e["ts"] + e["dur"] <= iteration["ts"] + iteration["dur"] + 1e-3
               for e in complete)
    assert len([e for e in complete if e["cat"] == "optimizer"]) == 1
    modules = {e["args"]["module"]: e for e in complete if e["cat"] == "module"}
    assert set(modules) == {"", "first", "second"}
    for line, module in NETWORK_LINES.items():
        forwards = [e for e in complete if e["cat"] == "forward" and e.get("args", {}).get("line") == line]
        assert forwards, f"no forward span for layers.py:{line}"
        if module:  # the Linear's own call lies inside that module's span
            inside = [e for e in forwards if e["args"].get("module") == module]
            holder = modules[module]
            assert inside and all(holder["ts"] <= e["ts"] and e["ts"] + e["dur"] <= holder["ts"] + holder["dur"]
                                  for e in inside)
    assert {e["args"]["line"] for e in complete if e["cat"] == "backward" and "line" in e.get("args", {})} \
        == {*NETWORK_LINES, LOSS_LINE}
    counters = [e for e in events if e["ph"] == "C"]
    assert counters and all(e["name"] == "memory" and e["args"]["bytes"] > 0 for e in counters)
    assert {e["name"] for e in events if e["ph"] == "M"} == {"process_name", "thread_name"}


def test_flows_link_each_line_forward_to_its_backward(traced):
    _report, trace = traced
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]

    def holder(point: dict, cat: str) -> dict:
        (span,) = [e for e in complete if e["cat"] == cat and e["tid"] == point["tid"]
                   and e["ts"] <= point["ts"] <= e["ts"] + e["dur"]]
        return span

    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    finishes = {e["id"]: e for e in events if e["ph"] == "f"}
    assert set(starts) == set(finishes) and len(starts) == len({*NETWORK_LINES, LOSS_LINE})
    for flow_id, start in starts.items():
        forward, backward = holder(start, "forward"), holder(finishes[flow_id], "backward")
        assert forward["args"]["line"] == backward["args"]["line"]
        assert start["name"] == f"layers.py:{forward['args']['line']}"
        assert forward["ts"] + forward["dur"] <= backward["ts"]


PAUSES = FIXTURES / "breakdown" / "known_sleeps" / "entry.py"  # 40 ms in a forward, 60 ms in a backward, 30 in step


@pytest.fixture(scope="module")
def paused(tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "iteration.json"
    report = skyline_tui.profile(str(PAUSES), config=ProfileConfig.quick(breakdown_iterations=1, health=False),
                                 memory=False, predictions=False, trace=str(path))
    assert report.error is None, report.error
    return json.loads(path.read_text())


def line_of(path, text: str) -> int:
    (number,) = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return number


def test_the_spans_carry_each_known_pause_on_its_own_line_and_phase(paused):
    """Against the fixture's sleeps, not the breakdown of the same records: a sleep never ends early, so the
    span that holds it lasts at least as long (on any machine), and the three pauses happen one after another
    within the iteration, so their spans are disjoint and inside it.  A pause charged to the wrong line or
    phase leaves its own span short; spans counted twice overlap."""
    complete = [e for e in paused["traceEvents"] if e["ph"] == "X"]

    def longest(cat: str, line: int | None = None) -> dict:
        spans = [e for e in complete if e["cat"] == cat and (line is None or e.get("args", {}).get("line") == line)]
        assert spans, (cat, line)
        return max(spans, key=lambda e: e["dur"])

    forward = longest("forward", line_of(PAUSES, "# FORWARD_PAUSE_LINE"))
    backward = longest("backward", line_of(PAUSES, "# BACKWARD_PAUSE_LINE"))
    step, iteration = longest("optimizer"), longest("iteration")
    assert forward["dur"] >= 40_000 and backward["dur"] >= 60_000 and step["dur"] >= 30_000  # microseconds
    held = sorted((forward, backward, step), key=lambda e: e["ts"])
    assert [e["cat"] for e in held] == ["forward", "backward", "optimizer"]
    for earlier, later in zip(held, held[1:]):
        assert earlier["ts"] + earlier["dur"] <= later["ts"] + 1e-3, (earlier, later)
    end = iteration["ts"] + iteration["dur"]
    assert iteration["ts"] <= held[0]["ts"] and held[-1]["ts"] + held[-1]["dur"] <= end + 1e-3
    assert iteration["dur"] >= (40 + 60 + 30) * 1000


def test_the_exported_iteration_is_the_measured_one_closest_to_the_breakdown_mean():
    from skyline_tui.profiler.attribution import FORWARD, ITERATION
    from skyline_tui.profiler.spans import split_iterations, typical

    def iteration(start_ms: float, length_ms: float) -> list:
        start, end = int(start_ms * 1e6), int((start_ms + length_ms) * 1e6)
        return [(start, end, (ITERATION, None, None), 1), (start + 1, start + 2, (FORWARD, ("m.py", 1), None), 1)]

    records = iteration(0, 50) + iteration(100, 10) + iteration(200, 14) + iteration(300, 30)  # warm-up first
    samples = [(int(ms * 1e6), ms) for ms in (1, 101, 201, 301)]
    runs = split_iterations(records, samples)
    assert [len(r) for r, _ in runs] == [2, 2, 2, 2]
    assert [[value for _at, value in s] for _r, s in runs] == [[1], [101], [201], [301]]
    measured = [r for r, _ in runs[-3:]]  # the warm-up iteration (50 ms) is not a candidate
    assert typical(measured, 18.0) == 1  # 14 ms is nearest to the mean of 10, 14 and 30
