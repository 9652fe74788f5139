"""The app's first number comes before the throughput settles: with ``provisional_throughput`` the run
reports the first round (marked unsettled), then the settled throughput; the ``--json`` default does not.

The entry point's iterations get slower and slower, on a clock the test reads instead of the real one: each
iteration advances it by 2 ms, 10 % more with every call (up to call 40, then steady), so the first rounds
never agree whatever the machine does, and later ones do."""

from __future__ import annotations

import sys
import time
import types

import pytest

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler import timing
from skyline_tui.profiler.run import profile
from skyline_tui.report import Report

SLOWING = """
import torch
import torch.nn.functional as F

CALLS = [0]
CLOCK_NS = [0]  # the clock the timing reads in this test: the iterations advance it

def skyline_model_provider():
    return torch.nn.Linear(4, 2)

def skyline_input_provider(batch_size=4):
    return torch.randn(batch_size, 4), torch.randint(0, 2, (batch_size,))

def skyline_iteration_provider(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    def iteration(x, y):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        CALLS[0] += 1
        CLOCK_NS[0] += round(2e6 * 1.1 ** min(CALLS[0], 40))  # 10 % longer with every call, then steady
    return iteration
"""

CONFIG = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health=False, throughput_budget_s=1.0)


@pytest.fixture(autouse=True)
def _cpu_clock_and_fresh_entry(monkeypatch):
    def entry_clock_ns() -> int:
        return sys.modules["__skyline_entry__"].CLOCK_NS[0]

    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter_ns=entry_clock_ns,
                                                               monotonic=time.monotonic))
    yield
    sys.modules.pop("__skyline_entry__", None)


def throughput_reports(tmp_path, config: ProfileConfig) -> list[Report]:
    path = tmp_path / "entry.py"
    path.write_text(SLOWING)
    emitted: list[tuple[str, Report]] = []
    final = profile(str(path), None, config, emit=lambda report, phase: emitted.append((phase, report)))
    assert final.error is None, final.error
    assert [phase for phase, _ in emitted][0] == "load"
    throughput = [report for phase, report in emitted if phase == "throughput"]
    assert throughput[-1].throughput == final.throughput  # the last one emitted is the run's answer
    return throughput


def test_the_app_sees_an_unsettled_number_after_the_first_round_then_the_settled_one(tmp_path):
    config = CONFIG.replace(provisional_throughput=True)
    first, last = throughput_reports(tmp_path, config)
    assert first.throughput is not None and first.throughput.stable is False
    assert first.throughput.iterations_measured == config.round_iterations
    # The search went on after the first number: the answer comes from rounds timed after it (when rounds
    # agree, the two that agreed are kept; when the budget runs out, all but the first).
    assert last.throughput is not None and last.throughput != first.throughput
    assert first.breakdown is None and first.predictions is None


def test_the_json_run_reports_the_throughput_once(tmp_path):
    (only,) = throughput_reports(tmp_path, CONFIG)
    assert only.throughput is not None


def test_the_app_config_asks_for_the_early_number_and_the_json_one_does_not():
    assert ProfileConfig.interactive().provisional_throughput is True
    assert ProfileConfig().provisional_throughput is False
