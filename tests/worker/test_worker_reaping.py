"""Every process of a cancelled run is reaped by the time its cancel is reported: no zombie is left for init.

Seen once after a storm of 31 saves: 3 zombies, gone within 2 s.  A run on CPU is three processes deep while it
measures a batch size (run child -> spawner -> measurer, one process group, batch_processes.py).  The cancel kills
the group and reaps the run child; the spawner and the measurer, orphaned, went to init, which reaps when it gets
round to it.  The worker is their reaper now (a child subreaper), and it waits for the whole group before it
reports the cancel: that report is the synchronous point the checks below stand on (no wait on the clock).
"""

from __future__ import annotations

import os
import time


from skyline_tui.config import ProfileConfig
from skyline_tui.lifetime import MEASURER_NAME
from skyline_tui.worker import protocol as p

from ..conftest import FIXTURES

# The predictions on, the other phases off: the run reaches a batch size measured in a process of its own, where
# hangs_above.py loops for ever, so each run is cancelled with its whole tree alive.  A budget that a loaded
# machine cannot spend on the smaller batch sizes first (with the quick 2 s, a run once ended before it tried one
# above 4, and no measurer ever hung).
PREDICTING = ProfileConfig.quick(breakdown=False, memory=False, health=False, predictions=True,
                                 predictions_budget_s=120.0, timeout_s=300.0)
HANGS_ABOVE = str(FIXTURES / "faults" / "hangs_above.py")
HEALTHY = str(FIXTURES / "faults" / "healthy.py")
POLLS = 5000  # looks at /proc, 10 ms apart, before a test gives up waiting for a process to appear


def _stat(pid: int) -> tuple[str, str, int, int] | None:
    """(name, state, parent, group) of a process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("utf-8", "replace")
    except OSError:
        return None
    state, parent, group = text[text.rindex(")") + 2:].split()[:3]
    return text[text.index("(") + 1:text.rindex(")")], state, int(parent), int(group)


def _processes() -> dict[int, tuple[str, str, int, int]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            found[int(entry)] = stat
    return found


def group_members(group: int) -> dict[int, str]:
    """pid -> state of every process (zombies included) in process group ``group``."""
    return {pid: state for pid, (_name, state, _parent, pgrp) in _processes().items() if pgrp == group}


def descendants(ancestor: int) -> dict[int, str]:
    """pid -> state of every process below ``ancestor``."""
    processes = _processes()
    below: dict[int, str] = {}
    frontier = [ancestor]
    while frontier:
        parent = frontier.pop()
        for pid, (_name, state, ppid, _group) in processes.items():
            if ppid == parent and pid not in below:
                below[pid] = state
                frontier.append(pid)
    return below


def measuring_run(worker_pid: int) -> int:
    """The run child's pid (its group) once a measurer runs in its group; polls a bounded number of times."""
    for _ in range(POLLS):
        processes = _processes()
        runs = [pid for pid, (_name, state, parent, _group) in processes.items()
                if parent == worker_pid and state != "Z"]
        for run in runs:
            if any(name == MEASURER_NAME and group == run and state != "Z"
                   for name, state, _parent, group in processes.values()):
                return run
        time.sleep(0.01)
    raise AssertionError(f"no batch size was measured in a process of its own: {descendants(worker_pid)}")




def test_a_cancelled_run_s_whole_process_tree_is_reaped_before_its_cancel_is_reported(worker):
    client, events = worker
    assert client.pid is not None
    for _ in range(4):
        run_id = client.submit(HANGS_ABOVE, None, PREDICTING)
        group = measuring_run(client.pid)
        assert len(group_members(group)) == 3  # run child, spawner, measurer: the tree the cancel must reap
        client.cancel(run_id)
        cancelled = events.final(run_id)
        assert cancelled.report.error is not None and cancelled.report.error.kind == "cancelled"
        assert group_members(group) == {}, "processes of the cancelled run were left (state Z: unreaped)"


def test_a_storm_of_saves_leaves_no_zombie_once_the_next_run_has_started(worker):
    client, events = worker
    assert client.pid is not None
    groups = []
    # Saves in a burst, each cancelling the last: most die while loading, some while measuring a batch size.
    for number in range(12):
        client.submit(HANGS_ABOVE, None, PREDICTING)
        if number % 4 == 3:
            groups.append(measuring_run(client.pid))
    # The next run loops for ever: its own process cannot have ended (and be waiting to be reaped) when looked at.
    last = client.submit(str(FIXTURES / "faults" / "infinite_loop.py"), None, PREDICTING)
    events.until(lambda e: isinstance(e, p.RunStarted) and e.run_id == last)
    finals = [e for e in events.seen if isinstance(e, p.RunReport) and e.final]
    assert [e.report.error.kind for e in finals if e.report.error] == ["cancelled"] * (last - 1)
    assert all(group_members(group) == {} for group in groups), "processes of cancelled runs were left"
    assert [pid for pid, state in descendants(client.pid).items() if state == "Z"] == []
