"""A torch.compile'd model under the profile's breakdown and memory phases, in this process (real dynamo, the
aot_eager backend)."""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path

import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.breakdown import measure_breakdown
from skyline_tui.profiler.entry import load_entry_point
from skyline_tui.profiler.memory import measure_memory
from skyline_tui.profiler.run import load_workload

ENTRY = Path(__file__).parent.parent / "fixtures" / "breakdown" / "compiled" / "entry.py"


def test_a_compiled_model_is_one_block_timed_as_a_plain_loop_runs_it_and_named_as_the_model_names_it():
    """The breakdown's hooks and mode had been traced into the graph: dynamo broke it at every op, guarded on our
    state and recompiled in the profiled iterations.  The mlp sample compiled read a 42 ms iteration, 33 ms of it
    on one line, for a 3.9 ms step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        entry = load_entry_point(ENTRY)
        work = load_workload(entry, entry.default_batch_size)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            breakdown = measure_breakdown(work, ProfileConfig.quick(breakdown_iterations=5))
            memory = measure_memory(work, ProfileConfig.quick())
        # The same iterations in a plain loop, after them (compiled and warm): the independent clock.
        times = []
        for _ in range(30):
            began = time.perf_counter()
            work.iteration(*work.inputs)
            times.append((time.perf_counter() - began) * 1e3)
        plain = statistics.median(times)
    finally:
        torch.set_num_threads(threads)
        torch._dynamo.reset()
    assert not [w for w in seen if "Dynamo" in str(w.message)], [str(w.message)[:120] for w in seen]
    assert plain / 3 <= breakdown.profiled_iteration_ms <= plain * 3, (breakdown.profiled_iteration_ms, plain)
    # The compiled forward and backward are one block: on the line of the frame dynamo compiled, under the model.
    top = breakdown.lines[0]
    assert (Path(top.file).name, top.line) == ("entry.py", 13) and top.forward_ms > 0 and top.backward_ms > 0
    assert [(row.path, row.type) for row in breakdown.modules] == [("", "Net")]
    assert len(breakdown.notes) == 1 and "torch.compile" in breakdown.notes[0]  # and the report says so
    assert {entry.module for entry in memory.entries if entry.kind == "weights"} == {"fc1", "fc2"}
