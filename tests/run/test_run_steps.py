"""``skyline-tui run`` on real training scripts, run as a user runs them: what it counts and records is checked
against what each script prints itself (its own step count, ``loss.item()`` values and perf_counter times)."""

from __future__ import annotations

import re
import statistics

import pytest

from tests.run_support import TRAIN, line_of, printed, printed_ms, run_script, step_count


def first_losses(outcome):
    return [step["losses"][0] for step in outcome.steps]


def within_noise(ours: float, theirs: float, slack_ms: float = 0.0) -> bool:
    # The same period measured from outside and from inside the loop, on a loaded 2-core machine: a generous
    # factor (and ``slack_ms`` for a period of a millisecond or two), never a time bound.
    return theirs / 4 - slack_ms <= ours <= theirs * 4 + slack_ms


def test_a_hand_written_sgd_loop_has_the_scripts_steps_losses_and_step_times(tmp_path):
    outcome = run_script(tmp_path, "sgd_by_hand.py", "--steps", "25")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 25
    assert first_losses(outcome) == printed(outcome.stdout)
    assert outcome.summary["loss"]["series"] == printed(outcome.stdout)
    assert within_noise(outcome.summary["step_ms"]["median"], statistics.median(printed_ms(outcome.stdout)))
    assert all(step["samples"] == 64 for step in outcome.steps)
    assert outcome.summary["samples_from"] == {"module": "Sequential", "tensor": "args[0]", "dim": 0,
                                               "override": None}


def test_evaluation_under_no_grad_is_timed_apart_and_is_not_a_step(tmp_path):
    outcome = run_script(tmp_path, "eval_no_grad.py")
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 40
    assert first_losses(outcome) == printed(outcome.stdout)
    evaluations = int(outcome.stdout.split("EVALUATIONS ")[1].split()[0])
    assert outcome.summary["evaluation"]["passes"] == evaluations == 12
    # The evaluation after steps 10, 20 and 30 lies in the time of steps 11, 21 and 31.
    assert [s["index"] for s in outcome.steps if s["evaluation_ms"] > 0] == [11, 21, 31]
    assert within_noise(outcome.summary["step_ms"]["median"], statistics.median(printed_ms(outcome.stdout)))


def test_lbfgs_with_a_closure_counts_one_step_per_call_and_keeps_every_backwards_loss(tmp_path):
    outcome = run_script(tmp_path, "lbfgs.py")
    backwards = int(outcome.stdout.split("BACKWARDS ")[1].split()[0])
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 10
    assert sum(len(step["losses"]) for step in outcome.steps) == backwards > 10
    assert first_losses(outcome) == printed(outcome.stdout)  # step(closure) returns the first evaluation's loss
    assert outcome.summary["loss"]["series"] == printed(outcome.stdout)  # the step's loss: that one, not a sum
    assert outcome.summary["loss"]["terms_per_step"] == [1, 1]
    assert within_noise(outcome.summary["step_ms"]["median"], statistics.median(printed_ms(outcome.stdout)))
    phases = outcome.summary["phases_ms"]
    assert phases["forward"] > 0 and phases["backward"] > 0  # run inside step(), not charged to the optimizer
    assert {step["samples"] for step in outcome.steps} == {50}  # the closure re-evaluates one batch of 50


def test_a_subclass_calling_super_step_is_one_step_and_a_refused_step_joins_the_next(tmp_path):
    """torch runs the step hooks twice for a subclass's ``super().step()`` once the base class was built too:
    still one step.  The step refused at 5 (raised before stepping, caught by the loop) never ran its post-hook:
    its iteration joins the next step, whose two losses are the two iterations'."""

    outcome = run_script(tmp_path, "super_step.py", "--skip-at", "5")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 11
    theirs = [float(m) for m in re.findall(r"^(?:STEP|SKIPPED) \d+ LOSS (\S+)", outcome.stdout, re.MULTILINE)]
    assert [loss for step in outcome.steps for loss in step["losses"]] == theirs
    assert [len(step["losses"]) for step in outcome.steps] == [1, 1, 1, 1, 2] + [1] * 6


def test_activation_checkpointing_recomputes_in_backward_not_in_a_forward_of_its_own(tmp_path):
    """Its recompute stops early by raising inside the block: torch then calls the global forward hooks without
    kwargs.  That had failed our hook (and printed torch's warning about it into the script's output), left a
    call open, and from step 2 on no forward was seen: no forward time, no samples."""
    outcome = run_script(tmp_path, "checkpointed.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert "Warning" not in outcome.process.stderr, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 10
    assert first_losses(outcome) == printed(outcome.stdout)
    assert all(step["samples"] == 48 for step in outcome.steps)
    # Three blocks pause 5 ms each in the forward, and again in backward's recompute (a sleep never underruns).
    assert all(step["forward_ms"] >= 15 and step["backward_ms"] >= 15 for step in outcome.steps), outcome.steps
    assert within_noise(outcome.summary["step_ms"]["median"], statistics.median(printed_ms(outcome.stdout)))


def test_a_script_without_modules_has_its_steps_and_losses_and_is_told_why_it_has_no_samples(tmp_path):
    outcome = run_script(tmp_path, "no_module.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 6
    assert first_losses(outcome) == printed(outcome.stdout)
    assert outcome.summary["samples_from"] is None and outcome.summary["samples_per_second"] is None
    assert "samples: no nn.Module was called" in outcome.process.stderr


def test_a_torchscript_model_trains_to_the_end_and_health_says_why_it_is_off(tmp_path):
    """The hooks on the outermost module, put on after the first step, raised inside the script's first
    ``optimizer.step()``: a ScriptModule takes none.  Its calls are seen by the global hooks (its layers run in
    TorchScript, not through them)."""
    outcome = run_script(tmp_path, "scripted.py", options=("--health-every", "2"))
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 8
    assert first_losses(outcome) == printed(outcome.stdout)
    assert all(step["samples"] == 32 and step["forward_ms"] > 0 for step in outcome.steps)
    assert "per-layer health is off for this run" in outcome.process.stderr


def test_sam_whose_wrapper_optimizer_never_steps_has_every_step_with_its_two_losses_and_batch(tmp_path):
    """The round waits for the wrapper, which never steps: its boundaries stay tentative until the end.  There they
    had been dropped (weakref's finalizers ran at exit before ours: no optimizer left, so 1 step), the last one with
    them, and every step cut at a tentative boundary had lost its batch."""
    outcome = run_script(tmp_path, "sam.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 12
    assert first_losses(outcome) == printed(outcome.stdout)
    assert [(step["samples"], len(step["losses"])) for step in outcome.steps] == [(32, 2)] * 12
    # Its first_step zeroes the gradients of the first pass: the step's loss is that pass's (the loss at the weights
    # it began with, which the script prints), not the sum of both.
    assert outcome.summary["loss"]["series"] == printed(outcome.stdout)


def test_a_wgan_gp_steps_loss_is_its_first_critic_update_not_the_penalty_s_autograd_grad(tmp_path):
    """Each critic update runs ``autograd.grad`` on ``D(mix).sum()`` (the penalty's), then ``loss_d.backward()``: the
    step (one round: three critic updates, one generator update) keeps all seven, and its loss is the first critic
    update's ``loss_d``.  It had been the first pass, ``D(mix).sum()``, which is no loss at all."""
    outcome = run_script(tmp_path, "wgan_gp.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 6
    critic = [[float(v) for v in line.split(" CRITIC ")[1].split(" G ")[0].split()]
              for line in outcome.stdout.splitlines() if line.startswith("STEP ")]
    assert outcome.summary["loss"]["series"] == [losses[0] for losses in critic]
    assert [step["losses"][1::2][:3] for step in outcome.steps] == critic  # after each penalty's pass
    assert [step["losses"][-1] for step in outcome.steps] == printed(outcome.stdout, "G")
    loss = outcome.summary["loss"]
    assert (loss["passes_per_step"], loss["terms_per_step"]) == ([7, 7], [1, 1])


def test_a_gan_with_two_optimizers_is_one_step_per_round_with_its_three_losses(tmp_path):
    outcome = run_script(tmp_path, "gan.py")
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 20
    lines = [line.split() for line in outcome.stdout.splitlines() if line.startswith("STEP ")]
    assert [step["losses"] for step in outcome.steps] == [[float(v) for v in line[3:6]] for line in lines]
    assert {step["samples"] for step in outcome.steps} == {24}  # three backward passes over one batch of 24
    # "The loss" of the summary is what D's step applied, the sum of its two halves (the script's Loss_D, dcgan's
    # errD), and it says so.
    loss = outcome.summary["loss"]
    assert loss["series"] == pytest.approx(printed(outcome.stdout, "LOSS_D"), rel=1e-6)
    assert (loss["passes_per_step"], loss["terms_per_step"]) == ([3, 3], [2, 2])
    assert f"(min {loss['min']:.4g}; first update's 2 of 3 passes, summed)" in outcome.process.stderr
    # Per-layer health names each model as the script does (its globals G and D), not "Sequential#1" and "#2".
    sampled = [e for e in outcome.events if e["type"] == "health"]
    assert sampled and {path.split(".")[0] for e in sampled for path in e["values"]} == {"G", "D"}
    assert within_noise(outcome.summary["step_ms"]["median"], statistics.median(printed_ms(outcome.stdout)))


def test_a_dataloader_with_worker_processes_gives_each_steps_batch_size(tmp_path):
    outcome = run_script(tmp_path, "dataloader_workers.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 16
    assert first_losses(outcome) == printed(outcome.stdout)
    assert [step["samples"] for step in outcome.steps] == [int(v) for v in printed(outcome.stdout, "LOSS \\S+ SAMPLES")]
    assert [e["type"] for e in outcome.events].count("started") == 1  # the forked workers sent nothing


def test_a_transform_module_on_each_sample_is_neither_the_model_nor_a_pass(tmp_path):
    """mnist/main.py on a CPU: torchvision's Normalize, an nn.Module, ran on every sample in the script's process,
    and the run took its samples from it (1 a step, 1.9 samples/s) and counted each call under no_grad as an
    evaluation pass (mnist_hogwild: 1,016 for its 16 test batches)."""
    outcome = run_script(tmp_path, "transforms_in_process.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 8
    assert first_losses(outcome) == printed(outcome.stdout)
    assert [step["samples"] for step in outcome.steps] == [int(v) for v in printed(outcome.stdout, "LOSS \\S+ SAMPLES")]
    assert outcome.summary["samples_from"]["module"] == "Sequential"
    assert outcome.summary["evaluation"]["passes"] == int(outcome.stdout.split("EVAL_BATCHES ")[1])  # not 44


def test_a_batch_given_as_a_keyword_counts_from_the_first_step(tmp_path):
    """A HuggingFace Trainer's model(**batch): step 1 had no samples (torch gives global pre-hooks no kwargs)."""
    outcome = run_script(tmp_path, "keyword_batch.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 4
    assert [step["samples"] for step in outcome.steps] == [int(v) for v in printed(outcome.stdout, "LOSS \\S+ SAMPLES")]
    assert outcome.summary["samples_from"]["tensor"] == "input_ids"


def test_gradient_accumulation_counts_every_micro_batch_of_the_step(tmp_path):
    """nanoGPT's loop: 4 forward/backward passes of 6 samples, then one optimizer step: 24 samples a step."""
    outcome = run_script(tmp_path, "accumulate.py", "4", "6", "8")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == 8
    assert [step["samples"] for step in outcome.steps] == [int(v) for v in printed(outcome.stdout, "SAMPLES")]
    assert {step["samples"] for step in outcome.steps} == {24}
    assert [len(step["losses"]) for step in outcome.steps] == [4] * 8
    loss = outcome.summary["loss"]
    assert (loss["passes_per_step"], loss["terms_per_step"]) == ([4, 4], [4, 4])
    # The step's loss is what the optimizer's step applied: the sum of its micro-losses (each already divided by
    # 4), as a HuggingFace Trainer logs it; not the last micro-batch's alone, nanoGPT's print.
    assert loss["series"] == pytest.approx(printed(outcome.stdout, "LOGGED"), rel=1e-12)
    assert loss["series"] != pytest.approx(printed(outcome.stdout, "LOSS"), rel=1e-3)


def test_a_crash_at_step_k_keeps_the_steps_before_it_and_points_at_the_users_line(tmp_path):
    outcome = run_script(tmp_path, "crash_at_step.py", "--crash-at", "4")
    assert outcome.process.returncode == 1
    assert outcome.summary["exit_code"] == 1
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 3
    assert first_losses(outcome) == printed(outcome.stdout)
    error = outcome.summary["error"]
    assert error["line"] == line_of("crash_at_step.py", "# CRASH LINE")
    assert error["message"] == "ValueError: bad batch at step 4"
    shown = outcome.process.stderr
    frames = [line for line in shown.splitlines() if line.startswith('  File "')]
    assert frames and all("crash_at_step.py" in line for line in frames), shown  # none of ours, nor runpy's
    assert shown.count("ValueError: bad batch at step 4") == 1


def test_a_nan_at_step_k_is_recorded_at_that_step(tmp_path):
    outcome = run_script(tmp_path, "nan_at_step.py", "--nan-at", "5", "--steps", "7")
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 7
    theirs = printed(outcome.stdout)
    first_nan = next(i for i, v in enumerate(theirs, 1) if v != v)
    assert first_nan == 5
    assert outcome.summary["loss"]["first_non_finite_step"] == first_nan
    assert first_losses(outcome)[:first_nan - 1] == theirs[:first_nan - 1]
    assert outcome.steps[first_nan - 1]["losses"] == [None] and outcome.steps[first_nan - 1]["non_finite_losses"] == 1


def test_a_script_that_never_trains_has_zero_steps_and_says_why(tmp_path):
    outcome = run_script(tmp_path, "never_trains.py")
    assert outcome.process.returncode == 0 and "PREDICTED 5" in outcome.stdout
    assert outcome.summary["steps"] == 0
    assert "5 forward passes ran without gradient" in outcome.summary["why_no_steps"]
    assert "no steps: 5 forward passes" in outcome.process.stderr


def test_a_script_that_trains_in_processes_it_starts_says_so_instead_of_nothing_was_trained(tmp_path):
    """mnist_hogwild trains in the processes it starts: 'nothing was trained' was wrong there."""
    outcome = run_script(tmp_path, "trains_in_processes.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    # (Not line by line: headless, the output is the script's own, and under PYTHONUNBUFFERED its processes'
    # lines can cut into one another as they do without skyline-tui.)
    assert len(re.findall(r"TRAINED \d+ 5", outcome.stdout)) == 2
    assert outcome.summary["steps"] == 0  # the trainers, forked with the hooks, sent nothing
    why = outcome.summary["why_no_steps"]
    evaluated, started = (int(outcome.stdout.split(word)[1].split()[0]) for word in ("EVALUATED ", "PROCESSES "))
    assert why.startswith(f"{evaluated} forward passes ran without gradient (evaluation) and no backward pass in "
                          "the script's own process"), why
    # Its DataLoader's worker is a process too, and not counted.
    assert f"; it started {started} processes (multiprocessing), which skyline-tui does not watch" in why, why


def test_a_script_that_changes_directory_and_starts_a_subprocess(tmp_path):
    outcome = run_script(tmp_path, "chdir_subprocess.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert "CHILD False" in outcome.stdout  # our settings do not leak into the script's own subprocesses
    assert f"FILE {TRAIN / 'chdir_subprocess.py'}" in outcome.stdout  # an absolute __file__, as python gives
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 5
    assert first_losses(outcome) == printed(outcome.stdout)


def test_a_torch_compiled_model(tmp_path):
    """Health had turned itself off at its first sample (AOT autograd traces the backward with
    ``torch.autograd.grad``: the wrapper took it for the script's, built the publisher on its functional tensors,
    and charged the compile to backward), dynamo traced the publisher's hooks into the graph (warning about
    ``sys._getframe``), and torch warned at every call that global hooks (ours, in the first step) exist."""
    outcome = run_script(tmp_path, "compiled.py", options=("--health-every", "2"))
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 6
    assert first_losses(outcome) == printed(outcome.stdout)
    assert "Warning" not in outcome.process.stderr and "health is off" not in outcome.process.stderr
    # The first forward compiles (hundreds of ms): forward's time, as the script's own clock says, not backward's.
    first = outcome.steps[0]
    assert within_noise(first["backward_ms"], printed(outcome.stdout, "BACKWARD_MS")[0], slack_ms=5.0)
    assert within_noise(first["forward_ms"], printed(outcome.stdout, "FORWARD_MS")[0], slack_ms=5.0)
    health = outcome.summary["health"]
    assert health["iterations"] >= 2 and any("torch.compile" in note for note in health["notes"])
    rows = {row["module"]: row for row in health["modules"]}
    assert set(rows) == {"0", "1", "2"}  # as the model names them, not _orig_mod.0
    assert {"weight_norm", "grad_norm", "update_to_weight"} <= set(rows["0"]["metrics"])
    assert not any(name.startswith("activation") for row in rows.values() for name in row["metrics"])  # as said


def test_a_module_run_with_dash_m_gets_its_arguments(tmp_path):
    outcome = run_script(tmp_path, "-m sgd_by_hand", "--steps", "4", cwd=TRAIN)
    assert outcome.process.returncode == 0, outcome.process.stderr
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 4
    assert outcome.summary["script"] == "-m sgd_by_hand"


def test_samples_per_step_overrides_the_batch_and_says_so(tmp_path):
    outcome = run_script(tmp_path, "gan.py", options=("--samples-per-step", "100"))
    assert {step["samples"] for step in outcome.steps} == {100}
    assert outcome.summary["samples_from"]["override"] == 100
    rates = [100 * 1e3 / step["wall_ms"] for step in outcome.steps[outcome.summary["warmup_steps"]:]]
    assert outcome.summary["samples_per_second"] == pytest.approx(statistics.median(rates))


def test_mixed_precision_steps_the_scaler_skipped_still_count_with_the_unscaled_loss(tmp_path):
    outcome = run_script(tmp_path, "amp_scaler_skips.py")
    assert outcome.process.returncode == 0, outcome.process.stderr
    skipped = [line.split()[3] == "True" for line in outcome.stdout.splitlines() if line.startswith("STEP ")]
    assert any(skipped) and not all(skipped)  # the fixture does what it says
    assert outcome.summary["steps"] == step_count(outcome.stdout) == 12
    assert first_losses(outcome) == printed(outcome.stdout, "SKIPPED \\S+ LOSS")  # loss, not loss x 2**127
