"""The health flags on real models: quiet on public reference models at their published training settings,
raised on DeepView's TestNet (its loss is the sum of its outputs), and the rules on hand-built values.

The reference models (tests/fixtures/health/reference/) are small-width versions of nanoGPT, a ViT, a CIFAR
ResNet, DenseNet-BC and VGG-11 with BatchNorm, each trained with the optimizer and learning rate its paper
or reference code publishes; they run through the real profile here.
"""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.health import LayerInfo, OptimizerSetting, judge_health
from skyline_tui.profiler.run import profile
from skyline_tui.report import Health

HEALTH = FIXTURES / "health"
REFERENCE_MODELS = ("gpt", "vit", "resnet", "densenet", "vgg")
UPDATE_FLAGS = {"update_ratio_high", "update_ratio_low"}


def health_of(entry: str, iterations: int) -> Health:
    config = ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health_iterations=iterations,
                                 health_budget_s=120.0)
    report = profile(str(HEALTH / entry), None, config)
    assert report.error is None, report.error
    assert report.health is not None and report.health.iterations == iterations
    return report.health


def raised(health: Health) -> dict[str, set[str]]:
    return {row.module: {flag.kind for flag in row.flags} for row in health.modules if row.flags}


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_a_reference_model_at_its_published_setting_raises_no_flag(name):
    health = health_of(f"reference/{name}.py", iterations=5)
    assert raised(health) == {}
    assert health.notes == ()
    assert sum(1 for row in health.modules if "update_to_weight" in row.metrics) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_a_reference_model_stays_quiet_over_twenty_iterations(name):
    assert raised(health_of(f"reference/{name}.py", iterations=20)) == {}


def test_testnet_whose_loss_sums_its_outputs_moves_its_layers_by_most_of_their_norm_and_is_flagged():
    health = health_of("testnet.py", iterations=5)
    flagged = raised(health)
    convolutions = [row for row in health.modules if row.type == "Conv2d"]
    assert len(convolutions) == 5
    for row in convolutions:
        assert flagged.get(row.module) == {"update_ratio_high"}, row.module
        (flag,) = row.flags
        # The value, the band and why: the median ratio, the ceiling, and SGD's lr x gradient with its norm.
        assert f"{row.metrics['update_to_weight'].median:.1e}" in flag.message
        assert "ceiling 1/3" in flag.message and "summed" in flag.message
        assert f"{row.metrics['grad_norm'].median:.1e}" in flag.message
    assert all(kinds <= UPDATE_FLAGS for kinds in flagged.values())


def test_too_few_iterations_raise_no_median_based_flag_and_say_so():
    health = health_of("learning_rates.py", iterations=2)
    assert raised(health) == {}  # fast (300x) and slow (1e-7x) would be flagged over 5 iterations
    assert any("only 2 iteration(s)" in note and "at least 5" in note for note in health.notes)


# --- the rules, on hand-built values --------------------------------------------------------------------

def layer(path: str, norm: bool = False, lr: float = 0.1, kind: str = "sgd") -> LayerInfo:
    return LayerInfo(path=path, type="BatchNorm2d" if norm else "Conv2d", parameters=100, normalization=norm,
                     optimizer=OptimizerSetting(name="SGD" if kind == "sgd" else "AdamW", kind=kind, lr=lr))


def history(ratios: dict[str, float], iterations: int = 5, weight: float = 1.0) -> list[dict[str, dict[str, float]]]:
    return [{path: {"update_to_weight": r, "grad_norm": 0.5, "weight_norm": weight} for path, r in ratios.items()}
            for _ in range(iterations)]


def test_a_layer_far_off_the_others_is_flagged_with_its_band_and_normalization_layers_are_judged_apart():
    ratios = {f"conv{i}": 1e-2 for i in range(6)}
    ratios |= {f"bn{i}": 1e-4 for i in range(5)}  # 100x below the convolutions: normal for a norm layer
    ratios["odd"] = 0.2  # 20x above the convolutions' median of 1e-2: inside 30x
    layers = [layer(path, norm=path.startswith("bn")) for path in ratios]
    assert raised(judge_health(layers, history(ratios))) == {}
    ratios["odd"] = 0.32  # 32x above: outside the band (and below the ceiling 1/3)
    health = judge_health(layers, history(ratios))
    assert raised(health) == {"odd": {"update_ratio_high"}}
    (flag,) = next(row for row in health.modules if row.module == "odd").flags
    assert "3.2e-01" in flag.message and "32x above the median 1.0e-02" in flag.message
    assert "band 3.3e-04 to 3.0e-01" in flag.message


def test_a_norm_layer_far_off_the_other_norm_layers_is_flagged_low():
    ratios = {f"conv{i}": 1e-2 for i in range(5)} | {f"bn{i}": 1e-3 for i in range(5)} | {"bn_slow": 1e-5}
    layers = [layer(path, norm=path.startswith("bn")) for path in ratios]
    health = judge_health(layers, history(ratios))
    assert raised(health) == {"bn_slow": {"update_ratio_low"}}
    (flag,) = next(row for row in health.modules if row.module == "bn_slow").flags
    assert "100x below the median 1.0e-03 of the model's 6 normalization layers" in flag.message


def test_an_adam_layer_above_the_ceiling_names_the_learning_rate_against_its_weights():
    ratios = {f"linear{i}": 0.5 for i in range(3)}
    layers = [layer(path, lr=0.05, kind="adaptive") for path in ratios]
    health = judge_health(layers, history(ratios, weight=0.2))  # 100 weights of norm 0.2: rms 0.02
    assert raised(health) == {path: {"update_ratio_high"} for path in ratios}
    message = health.modules[0].flags[0].message
    assert "AdamW moves each weight by about lr (0.05)" in message and "rms 2.0e-02" in message
    assert any("3 layers with an update ratio: too few" in note for note in health.notes)


def test_a_layer_that_started_from_zero_is_not_judged_on_its_early_steps():
    ratios = {f"conv{i}": 1e-2 for i in range(6)} | {"zero_init": 0.5}
    values = history(ratios)
    values[0]["zero_init"] = {"grad_norm": 0.5, "weight_norm": 0.0}  # no ratio before its first step
    health = judge_health([layer(path) for path in ratios], values)
    assert raised(health) == {}
    assert any("started from zero weights (zero_init)" in note for note in health.notes)


def test_a_gradual_spread_over_the_layers_is_no_outlier():
    # Layer-wise learning-rate decay spreads the ratios evenly over four decades: no layer stands apart, so
    # the band widens to 3.5 robust deviations (the ends sit 100x from the median, past 30x).
    ratios = {f"block{i}": 10 ** (-5 + i / 3) for i in range(13)}
    layers = [layer(path) for path in ratios]
    assert raised(judge_health(layers, history(ratios))) == {}
    # The same 1e-5 at one end, when the other layers sit together at the median, stands apart.
    tight = {path: 1e-3 for path in ratios} | {"block0": 1e-5}
    assert raised(judge_health(layers, history(tight))) == {"block0": {"update_ratio_low"}}


def test_a_layer_left_out_of_the_optimizer_is_flagged_low_and_says_so():
    ratios = {f"conv{i}": 1e-2 for i in range(5)} | {"forgotten": 0.0}
    layers = [layer(path) for path in ratios][:-1] + [LayerInfo(path="forgotten", type="Linear", parameters=10)]
    health = judge_health(layers, history(ratios))
    assert raised(health) == {"forgotten": {"update_ratio_low"}}
    assert "no optimizer in view steps its parameters" in health.modules[-1].flags[0].message


def test_the_phase_stretches_its_budget_up_to_three_times_until_a_median_can_be_judged():
    from skyline_tui.profiler.health.phase import _out_of_time

    budget = 5.0
    assert not _out_of_time(elapsed=12.0, done=4, budget=budget)  # 4 slow iterations: go on for the 5th
    assert _out_of_time(elapsed=15.5, done=4, budget=budget)  # but not past 3x the budget
    assert _out_of_time(elapsed=5.5, done=5, budget=budget)  # 5 done: the plain budget again
    assert not _out_of_time(elapsed=4.0, done=12, budget=budget)
