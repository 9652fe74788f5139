"""The publisher on a live model in the test's own process, as a supervisor of a training run uses it:
attached to a plain training loop, sampling one step in three, no entry point and no profile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.profiler.health import Publisher

STEPS = 12
EVERY = 3


def build() -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.LayerNorm(16), nn.Linear(16, 3))
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.05},
                                 {"params": [*model[2].parameters(), *model[3].parameters()], "lr": 0.01}],
                                momentum=0.9)
    generator = torch.Generator().manual_seed(6)
    return model, optimizer, torch.randn(32, 8, generator=generator), torch.randint(0, 3, (32,), generator=generator)


def step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def plain_ratios() -> list[float]:
    """The first layer's ||w_after - w_before|| / ||w_before|| at every sampled step, in a plain loop."""
    model, optimizer, x, y = build()
    ratios = []
    for i in range(STEPS):
        before = torch.cat([p.detach().clone().reshape(-1) for p in model[0].parameters()])
        step(model, optimizer, x, y)
        if i % EVERY == 0:
            after = torch.cat([p.detach().reshape(-1) for p in model[0].parameters()])
            ratios.append(float((after - before).norm() / before.norm()))
    return ratios


def test_sampled_steps_of_a_plain_loop_give_the_plain_loops_numbers_and_the_hooks_go_on_detach(tmp_path):
    model, optimizer, x, y = build()
    publisher = Publisher(model, ProjectFiles(tmp_path))
    publisher.attach()
    for i in range(STEPS):
        if i % EVERY == 0:
            publisher.start_iteration()
        step(model, optimizer, x, y)
        if i % EVERY == 0:
            publisher.end_iteration()
    publisher.detach()
    assert publisher.iterations == STEPS // EVERY
    assert [values["0"]["update_to_weight"] for values in publisher.history] == pytest.approx(plain_ratios(),
                                                                                              rel=1e-4)
    health = publisher.health()
    assert health.iterations == STEPS // EVERY
    assert [row.module for row in health.modules] == ["0", "1", "2", "3"]
    for mod in model.modules():
        assert not mod._forward_hooks and not mod._forward_pre_hooks
    assert torch._C._len_torch_function_stack() == 0


def test_the_layers_carry_the_optimizer_kind_and_each_groups_learning_rate():
    model, optimizer, x, y = build()
    with Publisher(model) as publisher:
        publisher.start_iteration()
        step(model, optimizer, x, y)
        publisher.end_iteration()
    layers = {layer.path: layer for layer in publisher.layers()}
    assert layers["0"].optimizer is not None and layers["0"].optimizer.lr == 0.05
    assert layers["3"].optimizer is not None and layers["3"].optimizer.lr == 0.01
    assert layers["0"].optimizer.name == "SGD" and layers["0"].optimizer.kind == "sgd"
    assert layers["2"].normalization and not layers["0"].normalization
    assert layers["1"].parameters == 0 and layers["1"].optimizer is None
    assert layers["0"].parameters == 8 * 16 + 16


def test_a_step_that_raises_is_dropped_and_leaves_no_mode_on_the_stack():
    model, optimizer, x, y = build()
    publisher = Publisher(model).attach()
    publisher.start_iteration()
    with pytest.raises(RuntimeError):
        publisher.run(lambda: model(torch.randn(2, 5)))  # wrong width: the user's error
    assert torch._C._len_torch_function_stack() == 0
    publisher.start_iteration()
    step(model, optimizer, x, y)
    publisher.end_iteration()
    publisher.detach()
    assert publisher.iterations == 1 and torch._C._len_torch_function_stack() == 0


def test_unsampled_steps_between_samples_leave_the_values_alone():
    # Steps run while attached but outside start/end: only the sampled step's update is measured.
    model, optimizer, x, y = build()
    with Publisher(model) as publisher:
        for _ in range(3):
            step(model, optimizer, x, y)
        publisher.start_iteration()
        before = torch.cat([p.detach().clone().reshape(-1) for p in model[3].parameters()])
        step(model, optimizer, x, y)
        after = torch.cat([p.detach().reshape(-1) for p in model[3].parameters()])
        values = publisher.end_iteration()
    assert values["3"]["update_to_weight"] == pytest.approx(float((after - before).norm() / before.norm()), rel=1e-4)
    assert publisher.iterations == 1
