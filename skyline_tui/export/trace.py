"""One profiled iteration as Chrome Trace Event JSON, which Perfetto UI and chrome://tracing open.

A pure function of the recorded spans (``profiler/spans.py`` records them in the run child), so the format
is testable without torch.  What comes out:

- ``"X"`` complete events in microseconds from the iteration's start: the iteration, each module's
  forward, each torch call charged to a project line (``file:line forward``), each autograd node charged to
  the forward line that created it (``file:line backward``) and the optimizer step.  Spans of one thread
  nest properly by construction (they were recorded on one thread as it entered and left them).
- a ``"C"`` counter track ``memory`` (bytes allocated, sampled at module and step boundaries);
- ``"s"``/``"f"`` flow events from each line's last forward call to its first backward node;
- ``"M"`` metadata naming the process and the threads.

The format is Chrome's "Trace Event Format" (JSON object form).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

PID = 1
CATEGORIES = ("iteration", "module", "forward", "backward", "optimizer")


@dataclass(frozen=True)
class Span:
    name: str
    cat: str  # one of CATEGORIES
    start_ns: int  # from the iteration's start
    end_ns: int
    tid: int
    line: Optional[tuple[str, int]] = None  # the project line charged, for forward/backward work
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MemorySample:
    at_ns: int
    bytes: int


def chrome_trace(spans: Sequence[Span], memory: Sequence[MemorySample], process_name: str,
                 thread_names: Optional[dict[int, str]] = None, memory_source: str = "",
                 other: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The trace as a JSON-ready dict (``{"traceEvents": [...], ...}``)."""
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": PID, "tid": 0, "args": {"name": process_name}},
    ]
    tids = sorted({span.tid for span in spans})
    names = thread_names or {}
    for index, tid in enumerate(tids):
        events.append({"ph": "M", "name": "thread_name", "pid": PID, "tid": tid,
                       "args": {"name": names.get(tid, "main thread" if index == 0 else f"thread {tid}")}})
    # Parents first at equal start times (longer first), so viewers that read in order nest them right.
    for span in sorted(spans, key=lambda s: (s.start_ns, -(s.end_ns - s.start_ns))):
        event: dict[str, Any] = {"ph": "X", "name": span.name, "cat": span.cat, "pid": PID, "tid": span.tid,
                                 "ts": _us(span.start_ns), "dur": _us(span.end_ns - span.start_ns)}
        if span.args:
            event["args"] = span.args
        events.append(event)
    memory_tid = tids[0] if tids else 0
    for sample in memory:
        events.append({"ph": "C", "name": "memory", "pid": PID, "tid": memory_tid, "ts": _us(sample.at_ns),
                       "args": {"bytes": sample.bytes}})
    events.extend(_flows(spans))
    trace: dict[str, Any] = {"traceEvents": events, "displayTimeUnit": "ms"}
    trace["otherData"] = {"memory_counter": memory_source, **(other or {})}
    return trace


def chrome_trace_json(*args: Any, **kwargs: Any) -> str:
    return json.dumps(chrome_trace(*args, **kwargs), allow_nan=False)


def _us(ns: int) -> float:
    return ns / 1000.0


def _flows(spans: Sequence[Span]) -> list[dict[str, Any]]:
    """A flow arrow per project line: from its last forward call to its first backward node.  Each end sits
    in the middle of its span, so viewers bind it to that span (the innermost one enclosing the point)."""
    last_forward: dict[tuple[str, int], Span] = {}
    first_backward: dict[tuple[str, int], Span] = {}
    for span in sorted(spans, key=lambda s: s.start_ns):
        if span.line is None:
            continue
        if span.cat == "forward":
            last_forward[span.line] = span
        elif span.cat == "backward" and span.line not in first_backward:
            first_backward[span.line] = span
    events: list[dict[str, Any]] = []
    for flow_id, line in enumerate(sorted(set(last_forward) & set(first_backward)), start=1):
        source, target = last_forward[line], first_backward[line]
        name = f"{line[0]}:{line[1]}"
        events.append({"ph": "s", "id": flow_id, "name": name, "cat": "forward->backward", "pid": PID,
                       "tid": source.tid, "ts": _us((source.start_ns + source.end_ns) // 2)})
        events.append({"ph": "f", "bp": "e", "id": flow_id, "name": name, "cat": "forward->backward", "pid": PID,
                       "tid": target.tid, "ts": _us((target.start_ns + target.end_ns) // 2)})
    return events
