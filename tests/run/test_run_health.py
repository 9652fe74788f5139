"""Per-layer health of a supervised run, sampled every N steps with the profile's publisher: the numbers are the
script's own (it prints them), its own health metric is computed, and the first NaN/Inf is found at its layer."""

from __future__ import annotations

import pytest

from tests.run_support import printed, run_script


def test_sampled_steps_carry_the_scripts_own_update_ratios_and_its_subscriber(tmp_path):
    outcome = run_script(tmp_path, "health_ratio.py", options=("--health-every", "3"))
    assert outcome.process.returncode == 0, outcome.process.stderr
    ratios = printed(outcome.stdout, "RATIO")
    grad_max = printed(outcome.stdout, "RATIO \\S+ GRADMAX")
    samples = [e for e in outcome.events if e["type"] == "health"]
    assert [e["step"] for e in samples] == [3, 6, 9, 12]  # every third step once the first has shown the model
    assert [e["values"]["0"]["update_to_weight"] for e in samples] == pytest.approx(
        [ratios[e["step"] - 1] for e in samples], rel=1e-4)
    assert [e["values"]["0"]["grad_max"] for e in samples] == pytest.approx(
        [grad_max[e["step"] - 1] for e in samples], rel=1e-6)
    sampled = [step["index"] for step in outcome.steps if step["health_sampled"]]
    assert sampled == [3, 6, 9, 12]
    health = outcome.summary["health"]
    assert health["iterations"] == 4
    rows = {row["module"]: row for row in health["modules"]}
    assert set(rows) == {"0", "1", "2"}
    assert rows["0"]["metrics"]["update_to_weight"]["series"] == pytest.approx(
        [ratios[e["step"] - 1] for e in samples], rel=1e-4)
    assert "grad_max" in rows["2"]["metrics"]
    # The per-layer hooks are on for the sampled steps only (pre and post, from the step's first forward on): the
    # steps between pay nothing per layer.
    assert printed(outcome.stdout, "RATIO \\S+ GRADMAX \\S+ HOOKS") == [0, 0, 2, 0, 0, 2, 0, 0, 2, 0, 0, 2]


def test_the_first_nan_is_located_at_its_layer_on_the_step_it_appears(tmp_path):
    outcome = run_script(tmp_path, "nan_at_step.py", "--nan-at", "5", "--steps", "7",
                         options=("--health-every", "1"))
    theirs = printed(outcome.stdout)
    first_nan = next(i for i, v in enumerate(theirs, 1) if v != v)
    found = outcome.summary["non_finite"]
    assert found["step"] == first_nan == 5
    assert found["where"]["module"] == "2" and found["where"]["phase"] == "forward"  # the Blowup layer
    rows = {row["module"]: row for row in outcome.summary["health"]["modules"]}
    assert [flag["kind"] for flag in rows["2"]["flags"]] == ["non_finite"]
    flagged = sum(1 for row in rows.values() if row["flags"])
    assert f"sampled steps, {flagged} layer{'' if flagged == 1 else 's'} flagged\n" in outcome.process.stderr


def test_without_health_the_loss_still_says_where_the_nan_began(tmp_path):
    outcome = run_script(tmp_path, "nan_at_step.py", "--nan-at", "3", "--steps", "5", options=("--no-health",))
    found = outcome.summary["non_finite"]
    assert found["step"] == 3 and found["where"] is None and "--health-every 1" in found["message"]
    assert outcome.summary["health"] is None


def test_a_script_updating_by_hand_is_sampled_too_and_its_nan_is_located(tmp_path):
    """Without an optimizer a step closes as the next forward begins (inside the model's hooks): health starts
    at the next backward, is sampled every second step, and the NaN the script writes into the last layer's
    weights before its step 7 (after step 6's update: in step 6 as the run counts steps) is found there."""
    outcome = run_script(tmp_path, "by_hand_nan.py", "7", options=("--health-every", "2"))
    assert outcome.process.returncode == 0, outcome.process.stderr
    losses = printed(outcome.stdout)
    assert len(losses) == 10 and next(i for i, v in enumerate(losses, 1) if v != v) == 7  # the script's own word
    # Health starts inside step 2 (at its backward): the first whole step it can sample is 4.
    assert [e["step"] for e in outcome.events if e["type"] == "health"] == [4, 6, 8]
    found = outcome.summary["non_finite"]
    assert found["step"] == 6 and found["where"]["module"] == "2" and found["where"]["phase"] == "optimizer"
    # Hooks on from each sampled step's first forward to its close (as the next forward begins: the script's
    # count, taken before it, still sees them), off otherwise (health attached at step 2's backward, parked).
    assert printed(outcome.stdout, "LOSS \\S+ HOOKS") == [0, 0, 0, 0, 2, 0, 2, 0, 2, 0]


def test_a_nan_loss_on_the_last_step_is_said_too(tmp_path):
    """The word about a loss that was not finite follows its step's record: on the run's last step too."""
    outcome = run_script(tmp_path, "nan_at_step.py", "--nan-at", "5", "--steps", "5", options=("--no-health",))
    assert [e["step"] for e in outcome.events if e["type"] == "non_finite"] == [5]
    assert outcome.summary["non_finite"]["step"] == 5


def test_gradients_updated_by_hand_are_read_before_the_scripts_next_zero_grad(tmp_path):
    """pytorch/examples' regression/main.py clears the gradients at the top of each step: by the time a step closes
    (the next forward), they are gone.  Health reads them as backward ends, so they are the script's own norms,
    and no layer is flagged as receiving no gradient (it was, on that script, before)."""
    outcome = run_script(tmp_path, "by_hand_zero_first.py", options=("--health-every", "2"))
    assert outcome.process.returncode == 0, outcome.process.stderr
    samples = [e for e in outcome.events if e["type"] == "health"]
    assert [e["step"] for e in samples] == [4, 6]
    for layer, words in (("0", "LOSS \\S+ GRAD0"), ("2", "LOSS \\S+ GRAD0 \\S+ GRAD2")):
        theirs = printed(outcome.stdout, words)
        assert [e["values"][layer]["grad_norm"] for e in samples] == pytest.approx(
            [theirs[e["step"] - 1] for e in samples], rel=1e-5)
    flags = {row["module"]: [f["kind"] for f in row["flags"]] for row in outcome.summary["health"]["modules"]}
    assert not any("no_gradient" in kinds for kinds in flags.values()), flags


def test_a_fresh_model_and_optimizer_per_fold_keeps_every_step_and_health_follows_the_model_trained(tmp_path):
    """After the first step the hooks watch the model found then; an optimizer over parameters not seen finds the
    outermost modules again.  Before: from the second fold on no forward, no samples, a step lost per fold (the
    rounds waited for the freed optimizer, which health's watch kept alive), health on the first fold's model."""
    outcome = run_script(tmp_path, "folds.py", options=("--health-every", "1"))
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == 12
    assert [step["losses"] for step in outcome.steps] == [[loss] for loss in printed(outcome.stdout)]
    assert [step["samples"] for step in outcome.steps] == printed(outcome.stdout, "LOSS \\S+ SAMPLES")
    assert all(step["forward_ms"] > 0 for step in outcome.steps)
    # Step 13 was due for a sample when step 12 closed, but never trained: the evaluation after the last step ran
    # without the per-layer hooks (they had made it 7-12x slower).
    assert "EVALUATION HOOKS 0" in outcome.stdout
    ratios = printed(outcome.stdout, "LOSS \\S+ SAMPLES \\S+ RATIO")
    samples = [e for e in outcome.events if e["type"] == "health"]
    assert len(samples) >= 3 and max(e["step"] for e in samples) > 8  # sampled in the last fold too
    assert [e["values"]["0"]["update_to_weight"] for e in samples] == pytest.approx(
        [ratios[e["step"] - 1] for e in samples], rel=1e-4)
    assert "FOLD 2 PREVIOUS_ALIVE False" in outcome.stdout  # health let the old model go
