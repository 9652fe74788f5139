"""Run-time breakdown: rows point at the right project lines and add up to the profiled iteration."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.nn.modules import module as module_hooks
from torch.optim import optimizer as optimizer_hooks

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.breakdown import measure_breakdown
from skyline_tui.profiler.entry import load_entry_point
from skyline_tui.profiler.errors import ProfileError
from skyline_tui.profiler.run import Workload, load_workload, profile
from skyline_tui.report import Breakdown, LineTiming

FIXTURES = Path(__file__).parent.parent / "fixtures" / "breakdown"
PROJECT = FIXTURES / "project"


def line_of(path: Path, text: str) -> int:
    """1-based number of the only line of ``path`` that contains ``text``."""
    numbers = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(numbers) == 1, (text, numbers)
    return numbers[0]


def workload(entry: Path) -> Workload:
    ep = load_entry_point(entry)
    return load_workload(ep, ep.default_batch_size)


def row(breakdown: Breakdown, file: str, text: str) -> LineTiming:
    line = line_of(PROJECT / file, text)
    matches = [r for r in breakdown.lines if (r.file, r.line) == (file, line)]
    assert matches, f"no row for {file}:{line} ({text}); rows: {[(r.file, r.line) for r in breakdown.lines]}"
    return matches[0]


def hooks_installed() -> tuple[int, ...]:
    return (len(module_hooks._global_forward_pre_hooks), len(module_hooks._global_forward_hooks),
            len(optimizer_hooks._global_optimizer_pre_hooks), len(optimizer_hooks._global_optimizer_post_hooks),
            torch._C._len_torch_function_stack(), id(torch.autograd.Function.__dict__["apply"]))


@pytest.fixture(scope="module")
def hot() -> Breakdown:
    # One intra-op thread: on a shared 2-core machine, two threads waiting on each other add noise that
    # has nothing to do with the model.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return measure_breakdown(workload(PROJECT / "entry.py"), ProfileConfig.quick(breakdown_iterations=3))
    finally:
        torch.set_num_threads(threads)


def test_the_line_with_16x_the_flops_ranks_first_and_owns_the_largest_backward(hot):
    top = hot.lines[0]
    assert (top.file, top.line) == ("hot_layers.py", line_of(PROJECT / "hot_layers.py", "torch.matmul(h, self.square)"))
    assert top.backward_ms > 0
    assert all(top.backward_ms > other.backward_ms for other in hot.lines[1:])


def test_an_eager_model_s_breakdown_has_no_note(hot):
    assert hot.notes == ()  # the note is torch.compile's (test_compiled.py)


def test_rows_are_sorted_by_total_time(hot):
    totals = [r.total_ms for r in hot.lines]
    assert totals == sorted(totals, reverse=True)


def test_rows_claim_nearly_all_of_the_hot_models_time(hot):
    assert hot.profiled_iteration_ms > 0
    assert hot.iterations_profiled == 3
    assert hot.other_ms >= 0 and hot.optimizer_ms > 0
    assert all(r.forward_ms >= 0 and r.backward_ms >= 0 for r in hot.lines)
    # Work left unattributed shows as a large other: in this model of big matmuls nearly every
    # millisecond belongs to a line (6-12 % other measured on a loaded 2-core machine; without backward
    # attribution it would be over half).  Where each millisecond goes is checked against known sleeps
    # in test_known_pauses_land_in_their_lines_direction_and_in_the_optimizer_row.
    assert hot.other_ms < 0.35 * hot.profiled_iteration_ms, (hot.other_ms, hot.profiled_iteration_ms)


def test_known_pauses_land_in_their_lines_direction_and_in_the_optimizer_row():
    """known_sleeps/entry.py pauses 40 ms inside a torch call on one line (forward), 60 ms in the backward
    of a custom Function applied on another line, and 30 ms in its optimizer's step."""
    entry = FIXTURES / "known_sleeps" / "entry.py"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a second, unscheduled intra-op thread would stretch the tiny ops (see hot)
    try:
        breakdown = measure_breakdown(workload(entry), ProfileConfig.quick(breakdown_iterations=3))
    finally:
        torch.set_num_threads(threads)
    fixture = sys.modules["__skyline_entry__"]
    forward_ms, backward_ms, step_ms = (1000 * fixture.FORWARD_PAUSE_S, 1000 * fixture.BACKWARD_PAUSE_S,
                                        1000 * fixture.STEP_PAUSE_S)
    rows = {r.line: r for r in breakdown.lines if r.file == "entry.py"}
    pauses_forward = rows.get(line_of(entry, "# FORWARD_PAUSE_LINE"))
    pauses_backward = rows.get(line_of(entry, "# BACKWARD_PAUSE_LINE"))
    assert pauses_forward and pauses_backward, breakdown.lines
    # A sleep never underruns, so the lower bounds hold on any machine; the upper bounds are loose (a
    # loaded machine stretches everything) and catch a pause counted twice.
    assert forward_ms <= pauses_forward.forward_ms < 3 * forward_ms + 50
    assert backward_ms <= pauses_backward.backward_ms < 3 * backward_ms + 50
    assert step_ms <= breakdown.optimizer_ms < 3 * step_ms + 50
    # Each pause belongs to its own line and direction only: the other direction of each line is a few
    # tiny ops.  Ratios to the pauses as measured, not absolute bounds, so load does not make them fail.
    assert pauses_forward.backward_ms < pauses_backward.backward_ms / 4
    assert pauses_backward.forward_ms < pauses_forward.forward_ms / 4
    # The iteration is timed on its own, around all three; the rows and the optimizer are disjoint
    # stretches inside it, so together they never exceed it (a millisecond counted twice would).
    assert breakdown.profiled_iteration_ms >= forward_ms + backward_ms + step_ms
    attributed = sum(r.total_ms for r in breakdown.lines) + breakdown.optimizer_ms
    assert attributed <= breakdown.profiled_iteration_ms


def test_functional_ops_get_their_own_rows_in_the_sibling_module(hot):
    matmul = row(hot, "hot_layers.py", "torch.matmul(h, self.square)")
    at = row(hot, "hot_layers.py", "h = h @ self.mix")
    gelu = row(hot, "hot_layers.py", "F.gelu(h)")
    for r in (matmul, at, gelu):
        assert r.forward_ms > 0 and r.backward_ms > 0
    assert at.code == "h = h @ self.mix"


def test_the_loss_in_the_iteration_function_is_charged_to_its_line_in_the_entry(hot):
    loss = row(hot, "entry.py", "loss = F.cross_entropy(logits, labels)")
    assert loss.forward_ms > 0 and loss.backward_ms > 0
    assert loss.code == "loss = F.cross_entropy(logits, labels)"


def test_backward_and_optimizer_calls_are_not_forward_time_of_their_lines(hot):
    rows = {(r.file, r.line): r for r in hot.lines}
    for text in ("loss.backward()", "optimizer.step()", "logits = model(x)"):
        # The model's work belongs to the lines inside it; backward() and step() launch no forward ops.
        assert ("entry.py", line_of(PROJECT / "entry.py", text)) not in rows, text


def test_module_tree_is_pre_order_with_totals_and_call_sites(hot):
    paths = [m.path for m in hot.modules]
    assert paths == ["", "down", "head"]
    root, down, head = hot.modules
    assert (root.type, down.type, head.type) == ("HotModel", "Linear", "Linear")
    assert (root.file, root.line) == ("entry.py", line_of(PROJECT / "entry.py", "logits = model(x)"))
    assert (down.file, down.line) == ("hot_layers.py", line_of(PROJECT / "hot_layers.py", "self.down(x)"))
    for m in hot.modules:
        assert m.self_forward_ms <= m.forward_ms + 1e-9 and m.self_backward_ms <= m.backward_ms + 1e-9
    # Inclusive and self, seen from the lines instead of the tree's own sum: HotModel.forward's five lines all
    # run inside the root's forward, the three functional ones (no submodule) in its own part.  (The times
    # themselves against known spins: test_module_times.py.)
    model_lines = [r for r in hot.lines if r.file == "hot_layers.py"]
    own_lines = [row(hot, "hot_layers.py", text)
                 for text in ("F.gelu(h)", "h @ self.mix", "torch.matmul(h, self.square)")]
    assert len(model_lines) == 5
    assert root.forward_ms == pytest.approx(sum(r.forward_ms for r in model_lines), rel=1e-6)
    assert root.self_forward_ms == pytest.approx(sum(r.forward_ms for r in own_lines), rel=1e-6)
    # The root's own work is the functional lines in its forward: the hot matmul among them.
    assert root.self_forward_ms > down.forward_ms and root.self_backward_ms > 0


def test_a_custom_autograd_function_s_backward_is_charged_to_the_line_that_applies_it():
    entry = FIXTURES / "custom_function" / "entry.py"
    original_apply = torch.autograd.Function.__dict__["apply"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        breakdown = measure_breakdown(workload(entry), ProfileConfig.quick(breakdown_iterations=3))
    finally:
        torch.set_num_threads(threads)
    rows = {r.line: r for r in breakdown.lines if r.file == "entry.py"}
    applied, cheap = rows[line_of(entry, "# APPLY_LINE")], rows[line_of(entry, "# CHEAP_LINE")]
    # 8 matmuls in its backward against 1 in its forward (charged to the forward's own line).
    assert applied.backward_ms == max(r.backward_ms for r in breakdown.lines)
    forward_matmul = rows[line_of(entry, "return x @ w")]
    assert applied.backward_ms > 3 * forward_matmul.forward_ms
    assert cheap.backward_ms < applied.backward_ms / 4  # the elementwise multiply's own backward only
    assert torch.autograd.Function.__dict__["apply"] is original_apply  # unwrapped afterwards


def test_every_hook_and_the_mode_are_removed_afterwards():
    before = hooks_installed()
    work = workload(PROJECT / "entry.py")
    measure_breakdown(work, ProfileConfig.quick())
    assert hooks_installed() == before
    work.run()  # the model is reused by later phases


def test_a_user_exception_propagates_as_an_error_and_still_removes_the_hooks():
    before = hooks_installed()
    work = workload(FIXTURES / "failing" / "entry.py")
    with pytest.raises(ProfileError) as info:
        measure_breakdown(work, ProfileConfig.quick())
    assert info.value.info.kind == "user_code"
    assert "flaky forward" in info.value.info.message
    assert hooks_installed() == before


def test_an_optimizer_step_that_raises_still_leaves_no_mode_or_hook_behind():
    before = hooks_installed()
    work = workload(FIXTURES / "failing_step" / "entry.py")
    with pytest.raises(ProfileError) as info:
        measure_breakdown(work, ProfileConfig.quick())
    assert "flaky step" in info.value.info.message
    assert hooks_installed() == before


def test_the_instruments_are_off_the_torch_function_stack_while_the_optimizer_steps(write_entry):
    """The step's calls are the optimizer's row: the mode must not see (and charge time for) each one."""
    entry = write_entry("""
        import torch
        import torch.nn as nn

        DEPTHS = {"forward": [], "step": []}


        class Recording(torch.optim.SGD):
            def step(self, closure=None):
                DEPTHS["step"].append(torch._C._len_torch_function_stack())
                return super().step(closure)


        class Net(nn.Linear):
            def forward(self, x):
                DEPTHS["forward"].append(torch._C._len_torch_function_stack())
                return super().forward(x)


        def skyline_model_provider():
            return Net(4, 4)


        def skyline_input_provider(batch_size=2):
            return (torch.randn(batch_size, 4),)


        def skyline_iteration_provider(model):
            optimizer = Recording(model.parameters(), lr=0.1, momentum=0.9)

            def iteration(x):
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()

            return iteration
    """)
    breakdown = measure_breakdown(workload(entry), ProfileConfig.quick(breakdown_iterations=2))
    depths = sys.modules["__skyline_entry__"].DEPTHS
    assert len(depths["step"]) == len(depths["forward"]) >= 3  # warm-up + 2 measured
    assert all(depth == 1 for depth in depths["forward"])  # the mode is on while the model runs...
    assert all(depth == 0 for depth in depths["step"])  # ...and off while the optimizer steps
    assert breakdown.optimizer_ms > 0


def test_profile_reports_the_breakdown_and_memory_next_to_the_throughput():
    report = profile(str(PROJECT / "entry.py"), None, ProfileConfig.quick(predictions=False))
    assert report.error is None, report.error
    assert report.breakdown is not None and report.breakdown.lines
    assert report.breakdown.lines[0].file == "hot_layers.py"
    weights = (1024 * 64 + 64 + 64 * 1024 + 1024 * 1024 + 1024 * 32 + 32) * 4
    assert report.memory is not None and report.memory.weights_bytes == weights
    assert report.memory.peak_bytes > 3 * weights  # weights + gradients + momentum, at least
