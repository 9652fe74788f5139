"""The live run view's state, folded from hand-written events; every expected number is computed by hand or
by a plain loop here, never by the view's own functions."""

from __future__ import annotations

import statistics

from skyline_tui.report import Health, HealthFlag, MetricSeries, ModuleHealth, NonFinite
from skyline_tui.run import events as ev
from skyline_tui.tui import run_state as rs
from skyline_tui.tui.curve import CURVE_POINTS
from skyline_tui.tui.run_state import RECENT_STEPS, RunView, fold


def step(index: int, wall: float, forward: float = 0.0, backward: float = 0.0, optimizer: float = 0.0,
         other: float = 0.0, samples: int | None = 10, loss: float | None = 1.0, rss: int | None = None,
         non_finite: int = 0) -> ev.Step:
    return ev.Step(index=index, end_s=index * 0.1, wall_ms=wall, forward_ms=forward, backward_ms=backward,
                   optimizer_ms=optimizer, evaluation_ms=0.0, other_ms=other, samples=samples,
                   losses=(loss,) if loss is not None or non_finite else (), non_finite_losses=non_finite,
                   rss_bytes=rss, loss=loss, loss_terms=1 if loss is not None or non_finite else 0)


def test_the_headline_is_the_median_of_the_last_20_steps_and_the_phases_their_means():
    # 30 steps: walls 1..30 ms; only steps 11..30 count: median wall (20 + 21) / 2 = 20.5 ms.
    events = [step(i, float(i), forward=1.0, backward=2.0, optimizer=0.5, other=i - 3.5) for i in range(1, 31)]
    view = fold(RunView("train.py"), events)
    figures = rs.step_figures(view)
    assert view.steps == 30 and not figures.final
    assert figures.step_ms == 20.5
    # 10 samples per step: 10_000 / wall samples/s; the median of 10000/11 .. 10000/30 is between 20 and 21.
    assert figures.samples_per_second == (10_000 / 20 + 10_000 / 21) / 2
    phases = dict(figures.phases_ms)
    assert phases["forward"] == 1.0 and phases["backward"] == 2.0 and phases["optimizer"] == 0.5
    assert phases["other"] == statistics.mean(i - 3.5 for i in range(11, 31))  # 17.0
    assert sum(phases.values()) == statistics.mean(range(11, 31))  # the phases add up to the mean step


def test_a_batch_folds_as_its_events_do_one_by_one():
    events: list[ev.Event] = [ev.ScriptStarted(pid=42, script="t.py", argv=("t.py",), cwd="/"),
                              ev.TorchSeen("2.13.0", cuda=False)]
    events += [step(i, 2.0, loss=5.0 - i, rss=1000 + i if i % 3 == 0 else None) for i in range(1, 300)]
    events += [ev.ScriptExited(exit_code=0, message="the script exited with status 0")]
    at_once = fold(RunView("t.py"), events)
    one_by_one = RunView("t.py")
    for event in events:
        one_by_one = fold(one_by_one, [event])
    assert at_once == one_by_one
    assert at_once.phase == rs.ENDED and at_once.pid == 42 and at_once.steps == 299
    assert len(at_once.recent) == RECENT_STEPS and at_once.recent[-1].index == 299
    assert at_once.first_loss == 4.0 and at_once.last_loss == 5.0 - 299


def test_memory_keeps_the_last_reading_between_readings_and_the_peak():
    view = fold(RunView("t.py"), [step(1, 1.0, rss=500), step(2, 1.0, rss=900), step(3, 1.0, rss=700),
                                  step(4, 1.0, rss=None)])
    assert view.rss_bytes == 700 and view.peak_rss_bytes == 900
    view = rs.capacity_read(view, host_ram_bytes=4000, gpu_total_bytes=None)
    assert rs.memory_readings(view) == [("RSS", 700, 900, 4000, "RAM")]


def test_the_loss_curve_keeps_a_whole_long_run_in_bounded_points_each_the_mean_of_its_steps():
    count = 5 * CURVE_POINTS + 7
    view = fold(RunView("t.py"), [step(i, 1.0, loss=float(i)) for i in range(1, count + 1)])
    points = view.loss.values
    assert len(points) <= CURVE_POINTS + 1
    bucket = view.loss.bucket
    losses = [float(i) for i in range(1, count + 1)]
    # A plain loop: the mean of each run of `bucket` consecutive losses, the unfinished last run included.
    expected = [statistics.mean(losses[i:i + bucket]) for i in range(0, count, bucket)]
    assert list(points) == expected
    assert bucket > 1  # it did have to merge


def test_layers_come_flagged_first_with_their_metric_series_and_their_line():
    def values(update: float | None, std: float) -> dict[str, dict[str, float | None]]:
        return {"fc1": {"update_to_weight": update, "activation_std": std}, "relu": {"activation_std": std},
                "fc2": {"update_to_weight": 0.5, "activation_std": std}}

    judged = Health(iterations=2, modules=(
        ModuleHealth("fc1", "Linear", "train.py", 12, {"update_to_weight": MetricSeries(0.002, 0.002, (0.001, 0.002))}),
        ModuleHealth("relu", "ReLU", "train.py", 13, {}),
        ModuleHealth("fc2", "Linear", "train.py", 14, {}, (HealthFlag("update_ratio_high", "too fast"),))))
    view = fold(RunView("train.py"), [
        ev.HealthSampled(step=10, values=values(0.001, 1.0), flagged={}),
        ev.HealthSampled(step=20, values=values(None, 2.0), flagged={"fc2": ("update_ratio_high",)}),
        ev.HealthSampled(step=30, values=values(0.003, 3.0), flagged={"fc2": ("update_ratio_high",)}),
        ev.HealthJudged(step=30, health=judged)])
    rows = rs.layer_rows(view)
    assert [row.module for row in rows] == ["fc2", "fc1", "relu"]
    fc2, fc1, relu = rows
    assert fc2.flags == ("update_ratio_high",) and fc2.messages == ("too fast",) and fc2.line == 14
    assert fc1.metric == "update_to_weight" and fc1.series == (0.001, 0.003)  # the null of step 20 left out
    assert (fc1.file, fc1.line, fc1.last) == ("train.py", 12, 0.003)
    assert relu.metric == "activation_std" and relu.series == (1.0, 2.0, 3.0) and relu.flags == ()


def test_the_first_nan_is_the_loss_s_and_the_layer_where_it_was_located_later_is_named_with_its_line():
    where = NonFinite(module="2", phase="forward", file="train.py", line=19, iteration=6, message="blew up")
    view = fold(RunView("t.py"), [
        step(5, 1.0, loss=None, non_finite=1),
        ev.NonFiniteSeen(step=5, where=None, message="the loss was not finite first at step 5"),
        ev.NonFiniteSeen(step=6, where=where, message="blew up"),
        ev.NonFiniteSeen(step=8, where=NonFinite("3", "forward", "train.py", 22, 8, "later"), message="later")])
    assert view.non_finite is not None and view.non_finite.step == 5
    assert view.located is not None and view.located.step == 6
    assert view.non_finite_losses == 1
    assert rs.non_finite_text(view) == ("NaN/Inf first at step 5 (the loss); at a layer first at step 6: "
                                        "train.py:19 in 2 (forward) · e: go to the line")


def test_stop_asked_only_while_the_run_goes():
    running = fold(RunView("t.py"), [ev.ScriptStarted(pid=7, script="t.py", argv=(), cwd="/")])
    assert rs.stop_asked(running).phase == rs.STOPPING
    assert "Ctrl-C sent to pid 7" in rs.status_text(rs.stop_asked(running))
    ended = fold(running, [ev.ScriptExited(exit_code=3, message="the script exited with status 3")])
    assert rs.stop_asked(ended).phase == rs.ENDED
    assert rs.status_text(ended).startswith("the script exited with status 3")


def test_a_burst_of_events_is_announced_once_and_drained_in_order_with_the_output_apart():
    from skyline_tui.tui.run_app import RunEventBuffer

    posted: list[object] = []
    buffer = RunEventBuffer(posted.append)
    for i in range(1, 1001):
        buffer(step(i, 1.0))
        if i % 100 == 0:
            buffer(ev.ScriptOutput(stream="stdout", text=f"STEP {i}\n"))
    assert len(posted) == 1  # one message for the whole burst: the app repaints once per drain
    events, output = buffer.drain()
    assert [e.index for e in events] == list(range(1, 1001))  # type: ignore[union-attr]
    assert output == [("stdout", f"STEP {i}\n") for i in range(100, 1001, 100)]
    buffer(step(1001, 1.0))
    assert len(posted) == 2  # announced again once drained


def test_steps_of_several_backward_passes_say_which_sum_the_loss_shown_is():
    from skyline_tui.run.summary import loss_note

    def passes(index: int, losses: tuple[float, ...], terms: int) -> ev.Step:
        return ev.Step(index=index, end_s=index * 0.1, wall_ms=1.0, forward_ms=0.0, backward_ms=0.0, optimizer_ms=0.0,
                       evaluation_ms=0.0, other_ms=0.0, samples=10, losses=losses, loss=sum(losses[:terms]),
                       loss_terms=terms)

    one_each = fold(RunView("t.py"), [step(i, 1.0) for i in range(1, 6)])
    assert one_each.loss_passes == (1, 1) and loss_note(one_each.loss_passes, one_each.loss_terms) == ""
    # D real and D fake before D's step, then G: the loss is D's.
    gan = fold(RunView("t.py"), [passes(i, (0.5 + i, 1.0, 2.0), 2) for i in range(1, 6)])
    assert (gan.loss_passes, gan.loss_terms) == ((3, 3), (2, 2)) and (gan.first_loss, gan.last_loss) == (2.5, 6.5)
    assert loss_note(gan.loss_passes, gan.loss_terms) == "first update's 2 of 3 passes, summed"
    accumulated = fold(RunView("t.py"), [passes(i, (0.25,) * 4, 4) for i in range(1, 3)])
    assert accumulated.last_loss == 1.0
    assert loss_note(accumulated.loss_passes, accumulated.loss_terms) == "sum of its 4 backward passes a step"
    # An LBFGS step evaluates its closure as often as it needs: 20 times, then 4, then 7.
    lbfgs = fold(RunView("t.py"), [passes(1, (1.0,) * 20, 1), passes(2, (0.5,) * 4, 1)])
    lbfgs = fold(lbfgs, [passes(3, (0.25,) * 7, 1)])
    assert lbfgs.loss_passes == (4, 20) and lbfgs.last_loss == 0.25
    assert loss_note(lbfgs.loss_passes, lbfgs.loss_terms) == "first update's pass, of up to 20 a step"


def test_a_flagged_layer_shows_the_metric_its_flag_was_raised_on():
    """resnet18 under imagenet/main.py showed its dead ReLUs' activation std (0.09) beside 'dead_units': the row
    shows what is dead, the share of dead units; an unflagged ReLU keeps its std."""
    def values(dead: float) -> dict[str, dict[str, float | None]]:
        return {"layer4.relu": {"activation_std": 0.09, "dead_fraction": dead},
                "layer1.relu": {"activation_std": 1.1, "dead_fraction": 0.04}}

    view = fold(RunView("train.py"), [
        ev.HealthSampled(step=1, values=values(0.09), flagged={}),
        ev.HealthSampled(step=2, values=values(0.88), flagged={"layer4.relu": ("dead_units",)}),
        ev.HealthSampled(step=3, values=values(0.92), flagged={"layer4.relu": ("dead_units",)})])
    dead, alive = rs.layer_rows(view)
    assert (dead.module, dead.metric, dead.last) == ("layer4.relu", "dead_fraction", 0.92)
    assert dead.series == (0.09, 0.88, 0.92)
    assert (alive.module, alive.metric, alive.series) == ("layer1.relu", "activation_std", (1.1, 1.1, 1.1))
