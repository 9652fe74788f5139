"""Where a step ends when the optimizers do not step one after the other: the step engine fed the hook calls a
script's loop makes, on a clock the test advances (torch-free; the real hooks are in test_run_steps.py)."""

from __future__ import annotations

from skyline_tui.run.steps import BACKWARD, FORWARD, OPTIMIZER, TENTATIVE_LIMIT, StepEngine


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def loop(engine: StepEngine, clock: Clock, optimizer: int, loss: float) -> None:
    """forward 1 s, backward 2 s, optimizer.step() 3 s, as the hooks report them."""
    for phase, seconds in ((FORWARD, 1.0), (BACKWARD, 2.0)):
        engine.enter(phase)
        if phase == BACKWARD:
            engine.note_loss(loss)
        clock.now += seconds
        engine.leave(phase)
    engine.optimizer_stepping(optimizer)
    engine.enter(OPTIMIZER)
    clock.now += 3.0
    engine.leave(OPTIMIZER)
    engine.optimizer_stepped(optimizer)


def test_a_critic_stepping_five_times_per_generator_step_is_one_step_per_generator_step():
    clock, steps = Clock(), []
    engine = StepEngine(steps.append, clock)
    critic, generator = 1, 2
    engine.optimizer_built(critic)
    engine.optimizer_built(generator)
    for iteration in range(3):
        for k in range(5):
            loop(engine, clock, critic, loss=iteration * 10 + k)
        loop(engine, clock, generator, loss=iteration * 10 + 5)
    engine.finish()
    assert len(steps) == 3
    assert [s.losses for s in steps] == [[i * 10 + k for k in range(6)] for i in range(3)]
    assert [s.end - s.start for s in steps] == [36.0, 36.0, 36.0]
    assert steps[0].seconds == {FORWARD: 6.0, BACKWARD: 12.0, OPTIMIZER: 18.0, "evaluation": 0.0}


def test_an_optimizer_built_and_never_stepped_stops_being_waited_for():
    clock, steps = Clock(), []
    engine = StepEngine(steps.append, clock)
    engine.optimizer_built(1)
    engine.optimizer_built(2)  # never steps
    count = TENTATIVE_LIMIT + 10
    for i in range(count):
        loop(engine, clock, 1, loss=float(i))
    engine.finish()
    assert len(steps) == count
    assert [s.losses for s in steps] == [[float(i)] for i in range(count)]
    assert {s.end - s.start for s in steps} == {6.0}


def test_updates_by_hand_are_steps_between_backward_passes():
    clock, steps = Clock(), []
    engine = StepEngine(steps.append, clock)
    for i in range(4):
        engine.enter(FORWARD)
        clock.now += 1.0
        engine.leave(FORWARD)
        engine.enter(BACKWARD)
        engine.note_loss(float(i))
        clock.now += 2.0
        engine.leave(BACKWARD)
        clock.now += 0.5  # the update, unseen
    engine.finish()
    assert [s.losses for s in steps] == [[0.0], [1.0], [2.0], [3.0]]
    assert [s.end - s.start for s in steps] == [3.5, 3.5, 3.5, 3.0]  # the last ends with its backward


def test_a_wrapper_that_never_steps_over_the_parameters_its_base_steps_is_not_waited_for():
    """SAM's wrapper never steps; its base optimizer steps the same parameters: each base step is a step at once
    (not after TENTATIVE_LIMIT of them).  A GAN's generator, over other parameters, is still waited for."""
    clock, steps = Clock(), []
    engine = StepEngine(steps.append, clock)
    engine.optimizer_built(1, frozenset({10, 11}))  # the wrapper
    engine.optimizer_built(2, frozenset({10, 11}))  # its base
    engine.optimizer_built(3, frozenset({20}))  # another model's: waited for
    for i in range(3):
        loop(engine, clock, 2, loss=float(i))
    assert steps == []  # the round waits for 3
    loop(engine, clock, 3, loss=3.0)
    assert len(steps) == 1 and steps[0].losses == [0.0, 1.0, 2.0, 3.0]
    loop(engine, clock, 2, loss=4.0)
    loop(engine, clock, 3, loss=5.0)
    assert len(steps) == 2 and steps[1].losses == [4.0, 5.0]
