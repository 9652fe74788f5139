"""On CPU each predicted batch size runs in a fresh process of its own (profiler/predictions/processes.py), through the
real worker: which process ran which batch, a measurer killed or failing at one batch, nothing left behind."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path

import pytest

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler import entry as entry_mod
from skyline_tui.profiler.predictions.processes import BatchProcesses
from skyline_tui.worker import protocol as p
from skyline_tui.worker.client import profile_once
from tests.processes import new_marker, processes_with_marker

# Every provider call and iteration is logged as {"pid", "what", "batch", "oom", "t"}: which process loaded the entry
# point, made which inputs and ran which batch size.  GUARD runs in the input provider.
ENTRY = """
import json, os, signal, sys, time
import torch
import torch.nn.functional as F

LOG = {log!r}
IMPORTED_BY = os.getpid()  # the run child: the processes are forked after the import

def _log(what, batch=None):
    with open("/proc/self/oom_score_adj") as adj:
        oom = int(adj.read())
    with open(LOG, "a") as out:
        out.write(json.dumps({{"pid": os.getpid(), "what": what, "batch": batch, "oom": oom,
                               "t": time.monotonic()}}) + "\\n")

_log("import")

def skyline_model_provider():
    _log("model")
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))

def skyline_input_provider(batch_size=8):
    _log("inputs", batch_size)
{guard}
    return torch.randn(batch_size, 16), torch.randint(0, 4, (batch_size,))

def skyline_iteration_provider(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    def iteration(x, y):
        _log("iteration", x.shape[0])
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return iteration
"""

CONFIG = ProfileConfig.quick(breakdown=False, health=False, predictions_budget_s=5.0)


def run(tmp_path, guard: str = "", config: ProfileConfig = CONFIG):
    log = tmp_path / "calls.jsonl"
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY.format(log=str(log), guard=textwrap.indent(textwrap.dedent(guard), "    ")))
    report = profile_once(str(entry), str(tmp_path), config)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return report, calls


class Plain:
    """One profile of the unguarded entry point, shared by the tests that read it (each profile forks a measurer
    per batch size): under a process marker, with an unfinished line printed at import and half a second of
    warm-up, so one run serves the tests of which process ran what, that nothing is left behind, that the line
    shows once and that a fresh process warms up as long as the headline did."""

    def __init__(self, folder: Path, marker: str) -> None:
        self.marker = marker
        entry = folder / "entry.py"
        log = folder / "calls.jsonl"
        # The run child's stdout is line-buffered: an unfinished line printed at import sits in its buffer when
        # the spawner is forked, and every measurer would print it again when it flushes on its way out.
        entry.write_text(ENTRY.format(log=str(log), guard="").replace(
            '_log("import")', '_log("import")\nprint("PARTIAL-LINE", end="")'))
        self.logs: list[str] = []
        # Everything is cold in a fresh process, as it was for the headline at b: its warm-up (``warmup_s``) is
        # the batch's too.  Half a second of iterations of a fraction of a millisecond: with a few warm-up
        # iterations only, a measurer would be done in milliseconds.
        self.report = profile_once(str(entry), str(folder), CONFIG.replace(warmup_s=0.5),
                                   on_event=lambda event: self.logs.append(event.text)
                                   if isinstance(event, p.RunLog) else None)
        self.calls = [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Plain:
    marker = new_marker()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKYLINE_TEST_MARKER", marker)
        return Plain(tmp_path_factory.mktemp("plain"), marker)


def batches_by_pid(calls) -> dict[int, set[int]]:
    ran: dict[int, set[int]] = {}
    for call in calls:
        if call["what"] == "iteration":
            ran.setdefault(call["pid"], set()).add(call["batch"])
    return ran


def test_each_sampled_batch_runs_alone_in_a_process_that_built_its_own_model(plain):
    report, calls = plain.report, plain.calls
    assert report.error is None, report.error
    sampled = {s.batch_size for s in report.predictions.samples}
    assert {16, 32, 4} <= sampled  # 2b, 4b, b/2 (b = 8)
    ran = batches_by_pid(calls)
    profiled = [pid for pid, batches in ran.items() if 8 in batches]
    assert len(profiled) == 1, ran  # the run child: the profiled batch and nothing else
    assert ran[profiled[0]] == {8}
    for batch in sampled - {8}:
        pids = [pid for pid, batches in ran.items() if batch in batches]
        assert len(pids) == 1 and ran[pids[0]] == {batch}, (batch, ran)
        built = {call["what"] for call in calls if call["pid"] == pids[0]}
        assert {"model", "inputs"} <= built  # it built its own model and inputs
    # The module is imported once, in the run child, before the processes are forked: not once per batch size.
    assert [call["what"] for call in calls].count("import") == 1, calls
    # Out of memory, the kernel is to kill a measurer first, not the run child (nor anything else).
    with open("/proc/self/oom_score_adj") as adj:
        ours = int(adj.read())
    assert {call["oom"] for call in calls if call["pid"] != profiled[0]} == {1000}, calls
    assert {call["oom"] for call in calls if call["pid"] == profiled[0]} == {ours}, calls


def test_a_measurer_killed_by_sigkill_counts_as_out_of_memory_and_the_run_goes_on(tmp_path):
    # The kernel's OOM killer sends SIGKILL: in the run child itself it would have ended the whole run.
    report, _calls = run(tmp_path, guard="""
        if batch_size >= 32:
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert report.error is None, report.error
    assert report.throughput is not None and report.predictions is not None
    assert report.predictions.oom_batch_size is not None and report.predictions.oom_batch_size >= 32
    assert all(s.batch_size < 32 for s in report.predictions.samples)
    assert report.predictions.max_batch_size is not None and 16 <= report.predictions.max_batch_size < 32


def test_a_batch_size_the_model_rejects_is_skipped_in_its_own_process(tmp_path):
    report, calls = run(tmp_path, guard="""
        if batch_size == 16:
            raise ValueError("this model takes no batch of 16")
    """)
    assert report.error is None, report.error
    sampled = {s.batch_size for s in report.predictions.samples}
    assert 16 not in sampled and {8, 32} <= sampled
    assert any(call["what"] == "inputs" and call["batch"] == 16 for call in calls)  # it was tried


def test_when_the_spawner_dies_the_predictions_carry_on_in_the_run_child(tmp_path):
    # The measurer for 16 kills its parent, the spawner (and dies with it): 16 and what follows are measured in
    # the run child, as where no process could be forked.
    report, calls = run(tmp_path, guard="""
        if batch_size == 16 and os.getpid() != IMPORTED_BY:
            os.kill(os.getppid(), signal.SIGKILL)
            signal.pause()
    """)
    assert report.error is None, report.error
    ran = batches_by_pid(calls)
    child = next(pid for pid, batches in ran.items() if 8 in batches)
    assert {16, 32} <= ran[child], ran  # after the spawner was gone, here
    assert {16, 32, 4} <= {s.batch_size for s in report.predictions.samples}


def test_the_measuring_processes_are_gone_when_the_run_ends(plain):
    assert plain.report.error is None
    assert len(batches_by_pid(plain.calls)) >= 4  # the run child and a measurer per sampled batch
    deadline = time.monotonic() + 10.0
    while processes_with_marker(plain.marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_marker(plain.marker) == []


def test_what_the_module_printed_before_the_fork_shows_once(plain):
    # (The unfinished line is printed at import: see Plain.)
    assert plain.report.error is None, plain.report.error
    assert "".join(plain.logs).count("PARTIAL-LINE") == 1, plain.logs


def test_not_started_where_forking_is_not_safe(tmp_path):
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY.format(log=str(tmp_path / "calls.jsonl"), guard=""))
    # A thread of the process would not survive the fork (OpenMP's pool: the forked process hangs in its first
    # parallel op), so with one running the predictions measure in-process.  A worker's run child is forked
    # single-threaded, and starts the spawner before it loads anything.
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        assert BatchProcesses.start(entry_mod.load_entry_point(str(entry), str(tmp_path))) is None
    finally:
        release.set()
        other.join()


def test_a_fresh_process_warms_up_as_long_as_the_headline_did_before_it_is_timed(plain):
    # (The run's warm-up is half a second: see Plain.)
    report, calls = plain.report, plain.calls
    assert report.error is None, report.error
    run_child = next(call["pid"] for call in calls if call["what"] == "import")
    spans = {}
    for call in calls:
        if call["what"] == "iteration" and call["pid"] != run_child:
            first, _last = spans.get(call["pid"], (call["t"], call["t"]))
            spans[call["pid"]] = (first, call["t"])
    assert len(spans) >= 3, spans  # 2b, 4b and b/2 at least, each in its own process
    assert all(last - first >= 0.5 for first, last in spans.values()), spans
