"""The tracked metrics in the live run view's state, folded from hand-written ``Metrics`` events (as
``track.log`` sends them over the run's stream); every expected number is written by hand or computed by a
plain loop here, never by the view's own functions."""

from __future__ import annotations

import statistics

from skyline_tui.run import events as ev
from skyline_tui.tui import run_state as rs
from skyline_tui.tui.curve import CURVE_POINTS
from skyline_tui.tui.run_state import RunView, fold


def metrics(*records: tuple[int, str, float | None]) -> ev.Metrics:
    return ev.Metrics(steps=tuple(r[0] for r in records), names=tuple(r[1] for r in records),
                      values=tuple(r[2] for r in records))


def a_step(index: int) -> ev.Step:
    return ev.Step(index=index, end_s=index * 0.1, wall_ms=1.0, forward_ms=0.0, backward_ms=0.0, optimizer_ms=0.0,
                   evaluation_ms=0.0, other_ms=0.0, samples=8, losses=(1.0,), non_finite_losses=0)


EVENTS: list[ev.Event] = [
    a_step(1),
    metrics((1, "val_loss", 0.9), (1, "acc", 0.5)),
    a_step(2),
    metrics((2, "val_loss", 0.4), (2, "acc", None), (2, "lr", 0.1)),  # acc was NaN at step 2
    a_step(3),
    metrics((3, "val_loss", 0.6), (3, "acc", 0.75)),
]


def test_each_metric_keeps_its_last_value_and_step_its_min_and_max_and_its_not_finite_count():
    view = fold(RunView("train.py"), EVENTS)
    assert [m.name for m in view.metrics] == ["val_loss", "acc", "lr"]  # the order first logged
    shown = rs.shown_metric(view)  # nothing chosen yet: the first
    assert shown is not None
    assert (shown.name, shown.position, shown.count) == ("val_loss", 1, 3)
    assert shown.values == (0.9, 0.4, 0.6)
    assert (shown.last, shown.last_step, shown.low, shown.high, shown.non_finite) == (0.6, 3, 0.4, 0.9, 0)
    acc = rs.shown_metric(rs.metric_chosen(view, 1))
    assert acc is not None and acc.name == "acc"
    assert acc.values == (0.5, 0.75)  # the NaN is counted, not drawn
    assert (acc.last, acc.last_step, acc.low, acc.high, acc.non_finite) == (0.75, 3, 0.5, 0.75, 1)


def test_the_keys_step_through_the_metrics_in_the_order_first_logged_and_go_round():
    view = fold(RunView("train.py"), EVENTS)

    def name_after(*deltas: int) -> str:
        chosen = view
        for delta in deltas:
            chosen = rs.metric_chosen(chosen, delta)
        shown = rs.shown_metric(chosen)
        assert shown is not None
        return shown.name

    assert name_after(1) == "acc" and name_after(1, 1) == "lr" and name_after(1, 1, 1) == "val_loss"
    assert name_after(-1) == "lr" and name_after(1, -1) == "val_loss"
    # The choice is the metric's name: a metric first logged later does not move it.
    chosen = rs.metric_chosen(view, 2)  # lr
    later = fold(chosen, [metrics((4, "grad_norm", 3.0))])
    shown = rs.shown_metric(later)
    assert shown is not None and (shown.name, shown.position, shown.count) == ("lr", 3, 4)


def test_before_any_metric_there_is_nothing_to_show_and_the_keys_change_nothing():
    view = fold(RunView("train.py"), [a_step(1), a_step(2)])
    assert rs.shown_metric(view) is None
    assert rs.metric_chosen(view, 1) == view


def test_a_long_run_s_metric_keeps_the_whole_run_in_bounded_points_and_exact_last_min_and_max():
    count = 3 * CURVE_POINTS + 5
    values = [float((i * 37) % 101) for i in range(count)]  # up and down, min 0, max 100
    batches = [metrics(*((i, "acc", values[i]) for i in range(start, min(start + 50, count))))
               for start in range(0, count, 50)]
    view = fold(RunView("train.py"), batches)
    shown = rs.shown_metric(view)
    assert shown is not None
    assert len(shown.values) <= CURVE_POINTS + 1
    bucket = view.metrics[0].curve.bucket
    assert bucket > 1  # it did have to merge
    # A plain loop: the mean of each run of `bucket` consecutive values, the unfinished last run included.
    assert list(shown.values) == [statistics.mean(values[i:i + bucket]) for i in range(0, count, bucket)]
    assert (shown.last, shown.last_step, shown.low, shown.high) == (values[-1], count - 1, 0.0, 100.0)


def test_a_batch_with_metrics_folds_as_its_events_do_one_by_one():
    at_once = fold(RunView("train.py"), EVENTS)
    one_by_one = RunView("train.py")
    for event in EVENTS:
        one_by_one = fold(one_by_one, [event])
    assert at_once == one_by_one and at_once.steps == 3
