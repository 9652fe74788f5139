"""The health phase's built-in numbers against plain torch on a fresh model, and the cheap checks behind
them against hand-built tensors: the publisher computes them its own (faster) way, so each is pinned to
the textbook computation here."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import FIXTURES

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.health.activations import dead_fraction, mean_and_std
from skyline_tui.profiler.health.outside import OutsideModelCheck
from skyline_tui.profiler.run import profile
from skyline_tui.report import ModuleHealth

HEALTH = FIXTURES / "health"
REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 4
LAYERS = ("first", "normal", "fast", "middle", "slow", "late", "head")  # in forward order


def import_fixture(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"health_numbers_{name}", HEALTH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def health_rows(entry: str) -> dict[str, ModuleHealth]:
    config = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health_iterations=ITERATIONS,
                                 health_budget_s=60.0)
    report = profile(entry, None, config)
    assert report.error is None and report.health is not None
    assert report.health.errors == () and report.health.iterations == ITERATIONS
    return {row.module: row for row in report.health.modules}


def plain_loop() -> dict[tuple[str, str], list[float]]:
    """The learning_rates fixture's fresh model trained in a plain loop, each layer's numbers per iteration."""
    entry = import_fixture("learning_rates")
    model = entry.skyline_model_provider()
    x, y = entry.skyline_input_provider()
    optimizer = entry.make_optimizer(model)
    expected: dict[tuple[str, str], list[float]] = {}

    def note(layer: str, metric: str, value: torch.Tensor) -> None:
        expected.setdefault((layer, metric), []).append(float(value))

    for _ in range(ITERATIONS):
        outputs = {}
        with torch.no_grad():  # each layer's output, a tanh between layers; Tensor.mean/std (Welford) as reference
            hidden = x
            for layer in LAYERS:
                outputs[layer] = getattr(model, layer)(hidden)
                hidden = torch.tanh(outputs[layer])
        for layer, out in outputs.items():
            note(layer, "activation_mean", out.mean())
            note(layer, "activation_std", out.std())
            note(layer, "weight_norm", torch.cat([p.detach().reshape(-1) for p in getattr(model, layer).parameters()])
                 .norm())
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for layer in LAYERS:
            note(layer, "grad_norm", torch.cat([p.grad.reshape(-1) for p in getattr(model, layer).parameters()]).norm())
        optimizer.step()
    return expected


def test_norms_and_activation_statistics_match_a_plain_loop_on_a_fresh_model():
    rows = health_rows(str(HEALTH / "learning_rates.py"))
    for (layer, metric), series in plain_loop().items():
        assert rows[layer].metrics[metric].series == pytest.approx(series, rel=1e-5, abs=1e-7), (layer, metric)


def test_the_readme_subscriber_runs_and_gets_its_series(tmp_path):
    # The README's example, verbatim, appended to a fixture's entry point: its grad_to_weight is
    # ||gradient|| / ||weight|| before each step, computed here in the plain loop.
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Training health"):]
    snippet = section[section.index("```python\n") + len("```python\n"):section.index("\n```\n")]
    assert "class GradToWeight(Subscriber)" in snippet and "def skyline_health_subscribers" in snippet
    entry = tmp_path / "entry.py"
    entry.write_text((HEALTH / "learning_rates.py").read_text() + "\n\n" + snippet + "\n")
    rows = health_rows(str(entry))
    expected = plain_loop()
    for layer in LAYERS:
        ratio = [g / w for g, w in zip(expected[(layer, "grad_norm")], expected[(layer, "weight_norm")])]
        assert rows[layer].metrics["grad_to_weight"].series == pytest.approx(ratio, rel=1e-5), layer


def test_mean_and_std_of_a_hand_built_tensor():
    mean, std = mean_and_std(torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=torch.float16))
    # mean 3, deviations -2 -1 0 3, sum of squares 14, over n - 1 = 3
    assert (float(mean), float(std)) == pytest.approx((3.0, math.sqrt(14 / 3)))
    mean, std = mean_and_std(torch.tensor([5.0]))
    assert (float(mean), float(std)) == (5.0, 0.0)
    assert float(mean_and_std(torch.full((1000,), 1.0))[1]) == 0.0  # a saturated layer: exactly no spread


def test_dead_fraction_counts_the_units_zero_for_every_sample():
    nan = float("nan")
    value = torch.tensor([[0.0, 1.0, 0.0, 0.0, nan],
                          [0.0, 0.0, -1.0, 0.0, 0.0],
                          [0.0, 0.0, 0.0, 0.0, 0.0]])
    # units 0 and 3 are zero for all three samples; 1 and 2 fire once; 4 holds a NaN (not a dead unit)
    assert float(dead_fraction(value)) == pytest.approx(2 / 5)
    assert float(dead_fraction(torch.tensor([0.0, 3.0, 0.0, 0.0]))) == pytest.approx(3 / 4)


def check_outside(code: object) -> bool:
    """Run ``code`` under the outside-model check: True when it saw only finite values."""
    check = OutsideModelCheck(torch.nn.Linear(1, 1))
    with check:
        code()  # type: ignore[operator]
    taken = check.take()
    return True if taken is None else bool(taken)


def test_the_outside_check_sees_a_nan_made_in_place_through_a_view_and_skips_plain_views():
    def in_place_on_a_view() -> None:
        base = torch.ones(4)
        base.view(2, 2)[0].sub_(2.0).log_()  # log of -1: NaN, written through a view

    def views_and_finite_work() -> None:
        base = torch.arange(6.0)
        base.view(2, 3).t()
        (base + 1).log().sum()

    def nan_after_infinity() -> None:
        infinite = torch.tensor([1.0, 0.0]).reciprocal()
        infinite - infinite

    assert check_outside(in_place_on_a_view) is False
    assert check_outside(nan_after_infinity) is False
    assert check_outside(views_and_finite_work) is True


def test_the_outside_check_takes_no_meant_infinity_and_no_unwritten_memory_for_a_nan():
    """A GAN's run said "a NaN/Inf appeared outside the model" on sampled steps where the script made none: the
    other model's check saw the publisher's ``empty_like`` (memory not written yet, a NaN now and then).  And a
    loss over logits masked with -inf was flagged on every sampled step."""
    def meant_infinities() -> None:
        logits = torch.zeros(2, 4).masked_fill(torch.tensor([False, False, True, True]), float("-inf"))
        torch.nn.functional.log_softmax(logits, -1)  # -inf where masked, which the loss never reads
        torch.tensor([1.0, 0.0]).reciprocal()

    def unwritten() -> None:
        for _ in range(5):
            with torch._C.DisableTorchFunction():  # not seen by the check
                torch.full((4096,), float("nan"))  # freed at once: the next block of this size may hold its NaNs
            torch.empty(4096).normal_()  # written before anything reads it

    assert check_outside(meant_infinities) is True
    assert check_outside(unwritten) is True


def test_a_models_own_check_stands_aside_in_its_forward_under_another_models_check():
    """A GAN's run stacks one check per trained model.  Each must leave its own model's calls alone even when
    the other's check sits above it (it cannot be taken off the stack then); the other's still checks them."""
    class MakesANaNInside(torch.nn.Module):
        def forward(self, x):
            return torch.nan_to_num((x - 2).log(), nan=0.0)  # a NaN inside, none in what it returns

    inner, other = MakesANaNInside(), torch.nn.Linear(1, 1)
    own, others = OutsideModelCheck(inner), OutsideModelCheck(other)
    own.install()
    try:
        with own, others:  # ``others`` on top
            inner(torch.ones(3))
    finally:
        own.remove()
    assert bool(own.take()) is True  # it saw only ``torch.ones`` (outside its model)
    assert bool(others.take()) is False  # the NaN made outside *its* model


def test_out_of_memory_building_the_fresh_model_is_a_health_error_and_the_rest_of_the_report_stands():
    # Through the real worker: the model provider raises torch.OutOfMemoryError on its second call (the
    # health phase's fresh model), as a big model would on a GPU holding the profiled one already.
    from conftest import QUICK_FLAGS, run_cli

    from skyline_tui.report import Report

    entry = HEALTH / "oom_second_model.py"
    result = run_cli(str(entry), "--json", "-", "-q", *QUICK_FLAGS)
    assert result.returncode == 0, result.stderr
    report = Report.from_json(result.stdout)
    assert report.error is None
    for section in ("throughput", "breakdown", "memory", "predictions"):
        assert getattr(report, section) is not None, section
    assert report.health is not None and report.health.iterations == 0 and report.health.modules == ()
    (error,) = report.health.errors
    assert error.subscriber == "" and "out of memory" in error.message and "fresh model" in error.message
    line = next(i for i, text in enumerate(entry.read_text().splitlines(), start=1) if "SECOND MODEL" in text)
    assert (error.file, error.line) == ("oom_second_model.py", line)


def test_a_layer_initialised_to_zero_has_no_first_ratio_and_does_not_end_the_phase():
    rows = health_rows(str(HEALTH / "zero_init.py"))  # asserts all ITERATIONS ran
    last = rows["2"].metrics
    assert last["weight_norm"].series[0] == 0.0
    assert last["update_to_weight"].series[0] is None  # ||w|| = 0: undefined, not Inf
    assert all(v is not None and v > 0 for v in last["update_to_weight"].series[1:])
    assert "non_finite" not in {flag.kind for row in rows.values() for flag in row.flags}
