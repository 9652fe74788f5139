"""Per-layer health by default: sampled as often as 5 % of the run's time allows, measured in the script's process.
A real Subscriber in the script that sleeps a known time makes the cost of a sample known: when it dominates, one
step is sampled; when it is small against the steps, most are.  `--health-every N` fixes the steps whatever they
cost, `--no-health` turns it off."""

from __future__ import annotations

from tests.run_support import printed_ms, run_script

BUDGET = 0.05


def sampled(outcome):
    return [step["index"] for step in outcome.steps if step["health_sampled"]]


def test_a_health_sample_costlier_than_the_whole_budget_is_taken_once(tmp_path):
    # The slow metric sleeps 50 ms on each of the two Linear layers: a sample costs at least 100 ms.
    outcome = run_script(tmp_path, "paced.py", "--steps", "30", "--pause-ms", "5", "--metric-ms", "50")
    assert outcome.process.returncode == 0, outcome.process.stderr
    # 5 % of the run allows a second 100 ms sample only after 2 s of it; the script's own steps took less.
    assert sum(printed_ms(outcome.stdout)) < 100 / BUDGET - 100
    # The model is known when step 1 closes, health attaches in step 2: step 3 is the first that can be sampled.
    assert sampled(outcome) == [3]
    assert outcome.summary["health"]["iterations"] == 1


def test_a_cheap_health_sample_is_taken_on_most_steps(tmp_path):
    # 150 ms per step (a slow data loader) leaves 7.5 ms a step for health; a sample of this 3-layer MLP costs
    # less here (tried by hand: steps 3 to 20 were all sampled), so at least half the steps must be.
    outcome = run_script(tmp_path, "paced.py", "--steps", "20", "--pause-ms", "150")
    assert outcome.process.returncode == 0, outcome.process.stderr
    steps = sampled(outcome)
    assert steps[0] == 3 and len(steps) >= 9, steps
    assert outcome.summary["health"]["iterations"] == len(steps)


def test_health_every_n_fixes_the_steps_whatever_they_cost_and_no_health_turns_it_off(tmp_path):
    fixed = run_script(tmp_path, "paced.py", "--steps", "12", "--metric-ms", "20", options=("--health-every", "4"))
    assert fixed.process.returncode == 0, fixed.process.stderr
    assert sampled(fixed) == [4, 8, 12]
    off = run_script(tmp_path, "paced.py", "--steps", "12", "--pause-ms", "150", options=("--no-health",))
    assert off.process.returncode == 0, off.process.stderr
    assert sampled(off) == [] and off.summary["health"] is None
