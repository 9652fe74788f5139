"""Where the batch-size sampler spends its time: nowhere once the points lie on a line within their noise,
and on re-timing while they do not.  The entry points spin for a known CPU time per iteration (a line, or
a curve, in the batch size), and iterations are timed in process CPU time on one thread, so what the
sampler should conclude is known without measuring anything, however loaded the machine is (on a shared
box other jobs inflate wall-clock times, and even sleeps, by 2-10x in bursts)."""

from __future__ import annotations

import sys
import time
import types

import pytest
import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler import entry as entry_mod
from skyline_tui.profiler import timing
from skyline_tui.profiler.batch_scaling import LINE_OR_CURVE_POINTS, MAX_PASSES, measure_predictions
from skyline_tui.profiler.run import device_info, load_workload, measure_throughput
from skyline_tui.report import Report

SLEEPING = """
import time
import torch
import torch.nn.functional as F

CALLS = []  # batch sizes the input provider was asked for: one per first measurement or re-timing

def skyline_model_provider():
    return torch.nn.Linear(4, 2)

def skyline_input_provider(batch_size=8):
    CALLS.append(batch_size)
    return torch.randn(batch_size, 4), torch.randint(0, 2, (batch_size,))

def skyline_iteration_provider(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    def iteration(x, y):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        b = x.shape[0]
        until = time.process_time() + ({milliseconds}) / 1000.0
        while time.process_time() < until:
            pass
    return iteration
"""

# Generous: the old sampler spent all of it re-timing every point, MAX_PASSES times over.
CONFIG = ProfileConfig.quick(predictions_budget_s=30.0)


@pytest.fixture(autouse=True)
def _cpu_clock_one_thread_and_fresh_entry(monkeypatch):
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter_ns=time.process_time_ns,
                                                               monotonic=time.monotonic))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    sys.modules.pop("__skyline_entry__", None)


def sample(tmp_path, milliseconds: str, config: ProfileConfig = CONFIG):
    path = tmp_path / "entry.py"
    path.write_text(SLEEPING.format(milliseconds=milliseconds))
    ep = entry_mod.load_entry_point(str(path))
    work = load_workload(ep, ep.default_batch_size)
    report = Report(entry_point=str(path), project_root=str(tmp_path), batch_size=work.batch_size,
                    device=device_info(work.device), throughput=measure_throughput(work, config))
    ep.module.CALLS.clear()
    pred = measure_predictions(work, config, report, measure_peak=None)
    # Every other batch's inputs are made once per measurement (the profiled batch reuses its own: not counted).
    retimes = {s.batch_size: ep.module.CALLS.count(s.batch_size) - 1 for s in pred.samples if s.batch_size != 8}
    return pred, retimes


def test_points_on_a_line_stop_the_sampling_long_before_the_budget(tmp_path):
    pred, retimes = sample(tmp_path, "10 + 0.5 * b")  # 12 ms at b=4 ... 42 ms at b=64: a line
    assert len(pred.samples) >= LINE_OR_CURVE_POINTS
    assert pred.run_time_ms is not None and pred.run_time_ms.slope == pytest.approx(0.5, rel=0.1)
    # A pass re-times every point; allow two passes' worth for a point that a burst of load pushed off.
    assert sum(retimes.values()) <= 2 * len(retimes), retimes
    assert sum(retimes.values()) < MAX_PASSES * len(retimes)


def test_points_off_the_line_keep_being_re_timed(tmp_path):
    # 1.6 ms at b=4 ... 42 ms at b=64: a parabola, so some point is always off any line.
    config = CONFIG.replace(predictions_budget_s=3.0)
    pred, retimes = sample(tmp_path, "1 + b * b / 100", config)
    assert len(pred.samples) >= LINE_OR_CURVE_POINTS
    assert sum(retimes.values()) >= 2, retimes


UNSETTLED = """
import time
import torch
import torch.nn.functional as F

CALLS = []  # (batch size, its iterations so far) each time the inputs of a measurement are made
ITERATIONS = {}

def skyline_model_provider():
    return torch.nn.Linear(4, 2)

def skyline_input_provider(batch_size=8):
    CALLS.append((batch_size, ITERATIONS.get(batch_size, 0)))
    return torch.randn(batch_size, 4), torch.randint(0, 2, (batch_size,))

def skyline_iteration_provider(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    def iteration(x, y):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        b = x.shape[0]
        n = ITERATIONS.get(b, 0)
        ITERATIONS[b] = n + 1
        # After one warm-up iteration, rounds of two alternate fast and 30 % slower: never two agree.
        slow = n > 0 and ((n - 1) // 2) % 2 == 1
        until = time.process_time() + (4 + 0.5 * b) * (1.3 if slow else 1.0) / 1000.0
        while time.process_time() < until:
            pass
    return iteration
"""


def test_a_new_batch_that_never_settles_is_timed_for_a_few_rounds_not_its_whole_budget(tmp_path):
    from skyline_tui.profiler.batch_scaling import POINT_ROUNDS
    from skyline_tui.profiler.memory import PEAK_ITERATIONS

    # A budget of 3 s per point would be 3000 / (2 * 20 ms) = 75 rounds at b=32; POINT_ROUNDS caps it.
    config = CONFIG.replace(throughput_budget_s=3.0, predictions_budget_s=60.0)
    path = tmp_path / "entry.py"
    path.write_text(UNSETTLED)
    ep = entry_mod.load_entry_point(str(path))
    work = load_workload(ep, ep.default_batch_size)
    report = Report(entry_point=str(path), project_root=str(tmp_path), batch_size=work.batch_size,
                    device=device_info(work.device), throughput=measure_throughput(work, config))
    ep.module.CALLS.clear()
    pred = measure_predictions(work, config, report, measure_peak=None)
    assert len(pred.samples) >= LINE_OR_CURVE_POINTS
    calls = ep.module.CALLS
    for batch in {s.batch_size for s in pred.samples} - {8}:
        marks = [done for b, done in calls if b == batch] + [ep.module.ITERATIONS[batch]]
        first_timing = marks[1] - marks[0]
        # The peak's profiled iterations (they warm the new shapes), the plain warm-up still missing (at
        # least one), then at most POINT_ROUNDS rounds, whatever the time budget estimated for them.
        warm = PEAK_ITERATIONS + max(1, config.warmup_iterations - PEAK_ITERATIONS)
        most = warm + POINT_ROUNDS * config.round_iterations
        assert config.min_rounds * config.round_iterations < first_timing <= most, (batch, first_timing)
