"""Knobs: provider keyword arguments and the built-in precision / channels_last / compile, applied by
load_workload in this process with real torch."""

from __future__ import annotations

import json
import time

import pytest
import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.entry import load_entry_point
from skyline_tui.profiler.errors import ProfileError
from skyline_tui.profiler.run import load_workload, profile

from ..conftest import FIXTURES

MLP = FIXTURES / "sweep" / "knobs_mlp.py"
CONVNET = FIXTURES / "sweep" / "knobs_convnet.py"


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_each_knob_goes_to_the_providers_that_declare_it():
    ep = load_entry_point(MLP)
    work = load_workload(ep, 3, ProfileConfig(knobs={"hidden": 5, "lr": 0.25, "features": 8}))
    # Linear(8, 5) + Linear(5, 2), counted by hand: 8*5 + 5 + 5*2 + 2.
    assert parameter_count(work.model) == 57
    assert ep.module.seen["lr"] == 0.25
    assert [tuple(t.shape) for t in work.inputs] == [(3, 8), (3,)]
    assert [tuple(t.shape) for t in work.make_inputs(6)] == [(6, 8), (6,)]


def test_no_knobs_profiles_the_entry_point_as_written():
    ep = load_entry_point(MLP)
    work = load_workload(ep, ep.default_batch_size)
    assert parameter_count(work.model) == 8 * 16 + 16 + 16 * 2 + 2
    assert ep.module.seen["lr"] == 0.1


def test_an_exception_in_a_provider_with_a_knob_names_the_provider():
    ep = load_entry_point(MLP)
    with pytest.raises(ProfileError) as caught:
        load_workload(ep, 2, ProfileConfig(knobs={"hidden": 0}))
    assert caught.value.info.function == "skyline_model_provider"
    assert "hidden must be positive" in caught.value.info.message


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_runs_the_iteration_under_autocast(precision, dtype):
    ep = load_entry_point(MLP)
    work = load_workload(ep, 4, ProfileConfig(precision=precision))
    work.run()
    assert ep.module.seen["dtype"] == dtype


@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last_converts_the_model_and_4d_inputs(channels_last):
    ep = load_entry_point(CONVNET)
    work = load_workload(ep, 2, ProfileConfig(channels_last=channels_last))
    work.run()
    assert ep.module.seen["channels_last"] is channels_last
    assert ep.module.seen["weight_channels_last"] is channels_last
    assert work.make_inputs(3)[0].is_contiguous(memory_format=torch.channels_last) is channels_last


def test_bad_precision_is_refused_at_the_boundary():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        ProfileConfig.from_dict({"precision": "fp8"})


@pytest.mark.slow
def test_compile_time_is_reported_apart_from_the_throughput():
    config = ProfileConfig.quick(breakdown=False, memory=False, health=False, predictions=False, compile=True)
    started = time.perf_counter()
    report = profile(str(MLP), None, config)
    wall_ms = (time.perf_counter() - started) * 1000.0
    assert report.error is None, report.error
    assert report.compile_ms is not None and 0 < report.compile_ms < wall_ms
    # Compiling costs far more than one compiled iteration: had the compile been timed as an iteration,
    # the mean over a handful of them would be a large part of it.
    assert report.throughput is not None
    assert report.throughput.iteration_ms * 4 < report.compile_ms
    assert profile(str(MLP), None, config.replace(compile=False)).compile_ms is None


def test_the_health_phase_rebuilds_the_model_with_the_same_knobs(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("SWEEP_TRIAL_LOG", str(log))
    config = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health=True,
                                 health_iterations=2, knobs={"hidden": 5})
    report = profile(str(FIXTURES / "sweep" / "logged_mlp.py"), None, config)
    assert report.error is None, report.error
    assert report.health is not None
    calls = [json.loads(line)["hidden"] for line in log.read_text().splitlines()]
    assert calls == [5, 5]  # the profiled model, then health's fresh one: both built with the knob
