"""Predictions spend no iteration twice: a new batch's peak comes first and is its warm-up, the profiled
batch's peak is the memory phase's, and the worker's imports are frozen out of the collector's sight."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler import entry as entry_mod
from skyline_tui.profiler.predictions.scaling import measure_predictions
from skyline_tui.profiler.memory import measure_memory
from skyline_tui.profiler.run import device_info, load_workload, measure_throughput
from skyline_tui.report import Report

REPO = Path(__file__).resolve().parents[2]

LOGGING_ENTRY = """
import time

import torch
import torch.nn.functional as F

LOG = []  # (batch size, whether torch's profiler was on) per iteration

def skyline_model_provider():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))

def skyline_input_provider(batch_size=8):
    return torch.randn(batch_size, 16), torch.randint(0, 4, (batch_size,))

def skyline_iteration_provider(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    def iteration(x, y):
        LOG.append((x.shape[0], torch._C._autograd._profiler_enabled()))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        # 2 ms of CPU time per sample: the model's own fraction of a millisecond (more where a fault or a cache
        # miss lands in it) then stays well inside the line's 5 % even at b/2 (1 ms a sample failed once in CI).
        until = time.thread_time() + 2 * x.shape[0] / 1000.0
        while time.thread_time() < until:
            pass
    return iteration
"""


@pytest.fixture(autouse=True)
def _forget_entry_modules():
    yield
    sys.modules.pop("__skyline_entry__", None)



def test_new_batches_start_with_their_peak_and_the_profiled_batch_reuses_the_memory_phase(tmp_path, cpu_clock):
    path = tmp_path / "entry.py"
    path.write_text(LOGGING_ENTRY)
    config = ProfileConfig.quick(warmup_iterations=2, round_iterations=3, predictions_budget_s=5.0)
    ep = entry_mod.load_entry_point(str(path))
    work = load_workload(ep, ep.default_batch_size)
    report = Report(entry_point=str(path), project_root=str(ep.files.root), batch_size=work.batch_size,
                    device=device_info(work.device), throughput=measure_throughput(work, config),
                    memory=measure_memory(work, config))
    log = ep.module.LOG
    log.clear()
    pred = measure_predictions(work, config, report)
    new_batches = [s.batch_size for s in pred.samples if s.batch_size != work.batch_size]
    assert new_batches
    # 2 ms a sample is a line: once b/2, b, 2b and 4b lie on it, 8b is probed, not measured in full (below).
    probed = [s.batch_size for s in pred.samples if s.peak_bytes is None]
    assert probed == [8 * work.batch_size] and pred.time_model == "line", pred
    for batch in probed:
        assert [profiled for size, profiled in log if size == batch] == [False, False], (batch, log)  # 1 + 1
    for batch in (b for b in new_batches if b not in probed):
        at_batch = [profiled for size, profiled in log if size == batch]
        # Two profiled iterations (the peak) come first; no plain warm-up iteration precedes them.
        assert at_batch[:2] == [True, True], (batch, at_batch[:4])
        assert not any(at_batch[2:]), (batch, at_batch)
        # The first visit's plain iterations are one warm-up iteration and whole timed rounds: of the two
        # warm-up iterations the config asks for, the peak's stood in for one (the full plain warm-up would
        # leave a remainder of 2).  A round lasts about one of the profiled batch's rounds (3 iterations of
        # 16 ms): 2 iterations at 16 (3 * 16 / 32 = 1.5, rounded up), 1 at 32 and 64.  (At 4 it would be 6:
        # too close to an integer ratio to pin.)
        start = next(i for i, (size, _) in enumerate(log) if size == batch)
        end = next((i for i in range(start, len(log)) if log[i][0] != batch), len(log))
        plain = end - start - 2
        if batch > work.batch_size:
            per_round = 2 if batch == 2 * work.batch_size else 1
            assert plain > config.min_rounds * per_round and (plain - 1) % per_round == 0, (batch, plain)
            if per_round == 2:
                assert plain % 2 == 1, (batch, plain)  # one warm-up, not two
    # The profiled batch: its time is the throughput's and its peak the memory phase's, so nothing at that
    # batch runs under the profiler here.
    assert not any(profiled for size, profiled in log if size == work.batch_size)
    profiled_sample = next(s for s in pred.samples if s.batch_size == work.batch_size)
    assert report.memory is not None
    assert profiled_sample.peak_bytes == report.memory.peak_bytes
    # A peak measured at the profiled batch still holds at least what a plain count says is resident:
    # weights + gradients + the inputs (8 x 16 floats and 8 int64 targets).
    weights = sum(p.numel() * 4 for p in work.model.parameters())
    assert profiled_sample.peak_bytes >= 2 * weights + 8 * 16 * 4 + 8 * 8


def test_the_worker_freezes_its_preloaded_imports():
    code = ("import gc\nfrom skyline_tui.worker.child import preload\npreload()\n"
            "print(gc.get_freeze_count(), len(gc.get_objects()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.split()
    frozen, unfrozen = int(out[0]), int(out[1])
    # torch alone leaves ~10^5 tracked objects; frozen, a child's full collection walks none of them.
    assert frozen > 50_000
    assert unfrozen < 1_000
    assert torch.__version__  # the same torch the worker imports
