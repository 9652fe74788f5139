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


def test_two_optimizers_each_read_their_own_gradients_as_a_gan_steps_them():
    # Discriminator: backward and step; then the generator: its own backward (the discriminator's gradients
    # go stale) and step.  Each layer's gradient is the one its own optimizer stepped with.
    def build_gan() -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
        torch.manual_seed(8)
        generator, critic = nn.Linear(4, 6), nn.Linear(6, 1)
        return generator, critic, torch.optim.Adam(generator.parameters(), lr=1e-3), \
            torch.optim.SGD(critic.parameters(), lr=0.01)

    noise = torch.randn(16, 4, generator=torch.Generator().manual_seed(9))

    def gan_step(generator, critic, gen_opt, critic_opt, grads=None):
        critic_opt.zero_grad()
        critic(generator(noise).detach()).mean().backward()
        if grads is not None:
            grads["critic"] = float(torch.cat([p.grad.reshape(-1) for p in critic.parameters()]).norm())
        critic_opt.step()
        gen_opt.zero_grad()
        (-critic(generator(noise)).mean()).backward()
        if grads is not None:
            grads["generator"] = float(torch.cat([p.grad.reshape(-1) for p in generator.parameters()]).norm())
        gen_opt.step()

    expected: dict[str, float] = {}
    gan_step(*build_gan(), grads=expected)  # the plain loop, reading each gradient before its step
    generator, critic, gen_opt, critic_opt = build_gan()
    model = nn.Sequential(generator, critic)  # one publisher over both networks
    with Publisher(model) as publisher:
        publisher.start_iteration()
        gan_step(generator, critic, gen_opt, critic_opt)
        values = publisher.end_iteration()
    assert values["0"]["grad_norm"] == pytest.approx(expected["generator"], rel=1e-5)
    assert values["1"]["grad_norm"] == pytest.approx(expected["critic"], rel=1e-5)
    kinds = {layer.path: layer.optimizer.kind for layer in publisher.layers() if layer.optimizer is not None}
    assert kinds == {"0": "adaptive", "1": "sgd"}


def test_weights_updated_by_the_scripts_own_code_are_measured_without_an_optimizer():
    torch.manual_seed(10)
    layer = nn.Linear(8, 2)
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(11))
    with Publisher(layer) as publisher:
        publisher.start_iteration()
        before = layer.weight.detach().clone(), layer.bias.detach().clone()
        layer(x).square().sum().backward()
        with torch.no_grad():
            for param in layer.parameters():
                param -= 0.05 * param.grad
        values = publisher.end_iteration()
    change = torch.cat([(layer.weight.detach() - before[0]).reshape(-1), layer.bias.detach() - before[1]]).norm()
    assert values[""]["update_to_weight"] == pytest.approx(float(change / torch.cat(
        [before[0].reshape(-1), before[1]]).norm()), rel=1e-4)
    assert values[""]["update_to_weight"] > 0


def test_a_shared_module_counts_its_calls_in_training_not_an_evaluation_inside_the_sampled_step():
    # A supervised run's sampled step runs from the last step's end to its own: an evaluation under no_grad
    # may fall inside it.  The ReLU below is called twice by the training forward (and twice by the evaluation).
    torch.manual_seed(7)
    fc1, fc2, relu, head = nn.Linear(8, 16), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    model = nn.ModuleDict({"fc1": fc1, "fc2": fc2, "relu": relu, "head": head})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return head(relu(fc2(relu(fc1(inputs)))))

    with Publisher(model) as publisher:
        for _ in range(2):
            publisher.start_iteration()
            with torch.no_grad():
                forward(x)
            optimizer.zero_grad()
            F.cross_entropy(forward(x), y).backward()
            optimizer.step()
            publisher.end_iteration()
    assert publisher.calls == {"fc1": 1, "fc2": 1, "relu": 2, "head": 1}
    assert {layer.path: layer.calls for layer in publisher.layers()}["relu"] == 2


def test_a_checkpointed_blocks_recompute_in_backward_is_not_a_call_of_its_own():
    """Activation checkpointing runs a block's forward again inside backward: the same call, not a second one,
    so the layer is not "the last of its 2 calls", and its numbers are the forward's (a plain hook's)."""
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(8)
    block = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
    model = nn.ModuleDict({"block": block, "head": nn.Linear(8, 3)})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    seen: list[float] = []
    plain = block[1].register_forward_hook(lambda module, args, out: seen.append(float(out.detach().mean())))
    with Publisher(model) as publisher:
        publisher.start_iteration()
        optimizer.zero_grad()
        F.cross_entropy(model["head"](checkpoint(block, x, use_reentrant=False)), y).backward()
        optimizer.step()
        values = publisher.end_iteration()
    plain.remove()
    assert len(seen) == 2  # the forward and its recompute in backward
    assert publisher.calls == {"block.0": 1, "block.1": 1, "block.2": 1, "head": 1}
    assert values["block.1"]["activation_mean"] == pytest.approx(seen[0])
