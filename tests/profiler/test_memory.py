"""Memory breakdown: exact byte counts for known shapes, and a peak measured, not guessed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.entry import load_entry_point
from skyline_tui.profiler.errors import is_oom
from skyline_tui.profiler.memory import CPU_PEAK_SOURCE, measure_memory, measure_peak, weight_entries
from skyline_tui.profiler.run import Workload, load_workload

from .test_cuda import assert_the_process_can_get

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "breakdown"
KNOWN = FIXTURES / "known_memory"

FLOAT = 4
# Tiny = Linear(8, 16) -> ReLU -> Linear(16, 4)
PARAM_BYTES = (8 * 16 + 16 + 16 * 4 + 4) * FLOAT  # 848
INPUT_BYTES = 4 * 8 * FLOAT  # batch 4


def line_of(path: Path, text: str) -> int:
    numbers = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(numbers) == 1, (text, numbers)
    return numbers[0]


def workload(entry: Path, batch_size: int | None = None) -> Workload:
    ep = load_entry_point(entry)
    return load_workload(ep, batch_size or ep.default_batch_size)


def test_cpu_peak_covers_resident_state_and_is_measured_by_the_profiler():
    work = workload(KNOWN / "sgd_entry.py")
    peak, source = measure_peak(work, work.inputs)
    # weights + gradients + momentum + the input stay resident across the iteration
    resident = 3 * PARAM_BYTES + INPUT_BYTES
    assert peak > resident
    # ... and the forward/backward temporaries of a model this small are a few hundred bytes
    assert peak < resident + 4096
    assert source == CPU_PEAK_SOURCE


def test_peak_grows_with_the_batch_size():
    work = workload(KNOWN / "sgd_entry.py")
    small, _ = measure_peak(work, work.make_inputs(4))
    large, _ = measure_peak(work, work.make_inputs(64))
    assert large > small


def test_peak_raises_the_users_oom_unchanged():
    work = workload(FIXTURES / "oom" / "entry.py")
    with pytest.raises(RuntimeError) as info:
        measure_peak(work, work.make_inputs(16))
    assert is_oom(info.value)
    assert "can't allocate" in str(info.value)


# ---------------------------------------------------------------------------------------------------
# measure_memory on the tiny known model: every named part counted by hand.
#
# Saved for backward during one forward of Tiny at batch 4, then loss = (out * out).mean():
#   fc1's addmm saves its input x                      4 x 8  floats = 128 bytes
#               (and weight.t(): a parameter's storage, so not an activation)
#   act (ReLU) saves its result r                      4 x 16 floats = 256 bytes
#   fc2's addmm saves its input: r again, the same storage (counted once)
#   out * out saves out (both operands, one storage)   4 x 4  floats =  64 bytes
#   mean saves nothing but sizes
ACTIVATION_BYTES = 128 + 256 + 64


def test_sgd_momentum_parts_match_a_hand_count():
    work = workload(KNOWN / "sgd_entry.py")
    memory = measure_memory(work, ProfileConfig.quick())
    assert memory.weights_bytes == PARAM_BYTES
    assert memory.gradients_bytes == PARAM_BYTES
    assert memory.optimizer_state_bytes == PARAM_BYTES  # one momentum buffer per parameter
    assert memory.activations_bytes == ACTIVATION_BYTES
    # By hand: the peak is the resident state (3 x PARAM_BYTES + INPUT_BYTES, after backward) plus the tiny
    # model's temporaries (under 4096 bytes; test_cpu_peak_covers_resident_state...), and the four named parts
    # (3 x PARAM_BYTES + ACTIVATION_BYTES) never all coexist: the activations are freed by backward before the
    # gradients are all there.  So "other" is the input and the temporaries less the activations the named
    # sum counts on top: under 4096 + INPUT_BYTES - ACTIVATION_BYTES; or the named parts exceed the peak and
    # the overlap is at most ACTIVATION_BYTES - INPUT_BYTES (not both).
    assert 0 <= memory.other_bytes < 4096 + INPUT_BYTES - ACTIVATION_BYTES, memory
    assert 0 <= memory.overlap_bytes <= ACTIVATION_BYTES - INPUT_BYTES, memory
    assert memory.other_bytes == 0 or memory.overlap_bytes == 0, memory
    # The hand-counted parts, plus other, less the overlap, are the peak (the bar adds up), and that peak is
    # the resident state plus at most the temporaries.
    parts = 3 * PARAM_BYTES + ACTIVATION_BYTES + memory.other_bytes - memory.overlap_bytes
    assert parts == memory.peak_bytes and 3 * PARAM_BYTES + INPUT_BYTES <= parts < 3 * PARAM_BYTES + INPUT_BYTES + 4096
    assert memory.peak_source == CPU_PEAK_SOURCE
    assert memory.capacity_bytes and memory.capacity_bytes > memory.peak_bytes


SCRATCH_BYTES = 64 * 1024 * 1024  # scratch_entry.py's torch.empty(16 Mi floats), alive from forward to step


def test_a_known_64_mib_temporary_shows_in_the_cpu_peak_and_lands_in_other():
    """A tensor of known size held across the whole iteration must be in the peak: the profiler sees it only
    through the allocator's events (it is freed before the measured iteration starts, so it is not resident)."""
    work = workload(KNOWN / "scratch_entry.py")
    peak, _ = measure_peak(work, work.inputs)
    # Alive together, counted by hand from the shapes: after backward, weights + gradients + momentum + the
    # input + the scratch; at the end of forward, weights + momentum + the input + the saved activations +
    # the scratch (zero_grad freed the gradients).
    after_backward = 3 * PARAM_BYTES + INPUT_BYTES + SCRATCH_BYTES
    after_forward = 2 * PARAM_BYTES + INPUT_BYTES + ACTIVATION_BYTES + SCRATCH_BYTES
    assert peak >= max(after_backward, after_forward)
    assert peak < max(after_backward, after_forward) + 4096  # the tiny model's own temporaries
    memory = measure_memory(work, ProfileConfig.quick())
    # The named parts are what they are without the scratch...
    assert (memory.weights_bytes, memory.gradients_bytes, memory.optimizer_state_bytes) == (PARAM_BYTES,) * 3
    assert memory.activations_bytes == ACTIVATION_BYTES
    # ...and the scratch is "other": never saved for backward, not a parameter, not optimizer state.
    # (Other is below the scratch by at most the activations: they and the gradients never all coexist.)
    assert SCRATCH_BYTES - ACTIVATION_BYTES <= memory.other_bytes < SCRATCH_BYTES + 4096
    assert memory.overlap_bytes == 0


def test_adam_state_is_two_moments_and_a_step_per_parameter():
    work = workload(KNOWN / "adam_entry.py")
    memory = measure_memory(work, ProfileConfig.quick())
    parameters = 4  # fc1.weight, fc1.bias, fc2.weight, fc2.bias
    assert memory.optimizer_state_bytes == 2 * PARAM_BYTES + parameters * FLOAT  # exp_avg, exp_avg_sq, step
    assert memory.weights_bytes == PARAM_BYTES and memory.gradients_bytes == PARAM_BYTES
    assert memory.activations_bytes == ACTIVATION_BYTES


def test_entries_attribute_activations_and_weights_to_modules_and_lines():
    work = workload(KNOWN / "sgd_entry.py")
    memory = measure_memory(work, ProfileConfig.quick())
    forward_line = line_of(KNOWN / "known_model.py", "h = self.act(self.fc1(x))")
    loss_line = line_of(KNOWN / "sgd_entry.py", "loss = (out * out).mean()")
    activations = {(e.module, e.file, e.line): e.bytes for e in memory.entries if e.kind == "activations"}
    assert activations == {
        ("fc1", "known_model.py", forward_line): 128,
        ("act", "known_model.py", forward_line): 256,
        (None, "sgd_entry.py", loss_line): 64,  # computed in the iteration, outside the model
    }
    weights = {e.module: e.bytes for e in memory.entries if e.kind == "weights"}
    assert weights == {"fc1": (8 * 16 + 16) * FLOAT, "fc2": (16 * 4 + 4) * FLOAT}
    fc1 = next(e for e in memory.entries if e.kind == "weights" and e.module == "fc1")
    assert (fc1.file, fc1.line) == ("known_model.py", forward_line)  # where fc1 is called
    assert [e.bytes for e in memory.entries] == sorted((e.bytes for e in memory.entries), reverse=True)
    assert sum(activations.values()) == memory.activations_bytes


def test_buffers_count_as_weights_and_shared_storages_count_once():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    model.add_module("tied", model[0])  # the same Linear again: its storage must not count twice
    total, entries = weight_entries(model)
    linear = (3 * 3 + 3) * FLOAT
    batchnorm = (3 + 3) * FLOAT + (3 + 3) * FLOAT + 8  # weight, bias, running mean/var, num_batches_tracked
    assert total == linear + batchnorm
    assert sum(e.bytes for e in entries) == total


def sample_weight_and_state_bytes(sample: str, module) -> tuple[int, int]:
    """Weight bytes of a sample's model counted from its architecture (the width it chose for its
    device), and its optimizer's state bytes: SGD momentum is one buffer per parameter; Adam two moments
    and a float32 step per parameter."""
    if sample == "mlp":  # Linear(784, w) -> Linear(w, w) -> Linear(w, 10)
        w = module.WIDTH
        weights = (784 * w + w + w * w + w + w * 10 + 10) * FLOAT
        return weights, weights
    # Embedding(1000, 64) -> LSTM(64, h, 2 layers): per layer W_ih (4h x in), W_hh (4h x h), two 4h
    # biases -> Linear(h, 5): 11 parameters.
    h, embed = module.HIDDEN, 64
    weights = (1000 * embed + 4 * h * embed + 4 * h * h + 8 * h + 4 * h * h + 4 * h * h + 8 * h + h * 5 + 5) * FLOAT
    return weights, 2 * weights + 11 * FLOAT


@pytest.mark.parametrize("sample", ["mlp", "lstm"])
def test_sample_parts_match_their_architecture_and_what_coexists_fits_under_the_cpu_peak(sample):
    """Weights, optimizer state and the saved activations are all alive when the forward pass ends, so
    the measured peak can never be below them; gradients may overlap activations in time."""
    work = workload(REPO / "samples" / sample / "entry.py")
    memory = measure_memory(work, ProfileConfig.quick())
    weights, state = sample_weight_and_state_bytes(sample, work.entry.module)
    assert memory.weights_bytes == weights
    assert memory.gradients_bytes == weights
    assert memory.optimizer_state_bytes == state
    assert memory.activations_bytes > 0
    assert memory.weights_bytes + memory.optimizer_state_bytes + memory.activations_bytes <= memory.peak_bytes


COUNTING_ENTRY = """
import torch

ITERATIONS = [0]

def skyline_model_provider():
    return torch.nn.Linear(8, 4)

def skyline_input_provider(batch_size=4):
    return (torch.randn(batch_size, 8),)

def skyline_iteration_provider(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    def iteration(x):
        ITERATIONS[0] += 1
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
    return iteration
"""


def test_the_memory_phase_runs_two_iterations_its_hooked_one_is_the_peaks_first(tmp_path):
    entry = tmp_path / "entry.py"
    entry.write_text(COUNTING_ENTRY)
    work = workload(entry)
    counted = work.entry.module.ITERATIONS
    memory = measure_memory(work, ProfileConfig.quick())
    assert counted[0] == 2  # the entry's own count: the hooked iteration, then the measured one
    weights = (8 * 4 + 4) * FLOAT
    assert memory.weights_bytes == memory.gradients_bytes == weights and memory.optimizer_state_bytes == 0
    assert memory.activations_bytes == 4 * 8 * FLOAT  # Linear saves its input for the weight's gradient


def test_memory_phase_leaves_no_hooks_behind():
    from torch.nn.modules import module as module_hooks
    from torch.optim import optimizer as optimizer_hooks

    before = (len(module_hooks._global_forward_pre_hooks), len(optimizer_hooks._global_optimizer_pre_hooks))
    work = workload(KNOWN / "sgd_entry.py")
    measure_memory(work, ProfileConfig.quick())
    assert (len(module_hooks._global_forward_pre_hooks), len(optimizer_hooks._global_optimizer_pre_hooks)) == before
    assert not torch._C._autograd._top_saved_tensors_default_hooks(False)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_cuda_parts_fit_inside_the_allocator_peak():
    work = workload(Path(__file__).parent.parent / "fixtures" / "cuda" / "entry.py")
    assert work.device.type == "cuda"
    memory = measure_memory(work, ProfileConfig.quick())
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    work.run()
    torch.cuda.synchronize()
    reference = torch.cuda.max_memory_allocated()
    assert memory.peak_source == "torch.cuda.max_memory_allocated"
    # The caching allocator rounds blocks up (512 bytes), so its peak is at least the exact parts.  At the
    # end of the forward pass weights, optimizer state and every saved activation are alive together.
    assert memory.weights_bytes + memory.gradients_bytes + memory.optimizer_state_bytes <= memory.peak_bytes
    assert memory.activations_bytes > 0
    assert memory.weights_bytes + memory.optimizer_state_bytes + memory.activations_bytes <= memory.peak_bytes
    # Linear(256, 512) -> ReLU -> Linear(512, 10) (tests/fixtures/cuda/entry.py), counted from the shapes;
    # Adam: two moments + a step each.
    weights = (256 * 512 + 512 + 512 * 10 + 10) * FLOAT
    assert memory.weights_bytes == weights and memory.gradients_bytes == weights
    assert memory.optimizer_state_bytes == 2 * weights + 4 * FLOAT
    assert memory.peak_bytes == pytest.approx(reference, rel=0.05)
    # What this process can get (free + held by torch), not the device's total: tried (test_cuda.py).
    assert_the_process_can_get(memory.capacity_bytes)
