"""The pure prediction arithmetic the UI uses, checked against numbers worked out by hand."""

from __future__ import annotations

import dataclasses

import subprocess
import sys
from pathlib import Path

import pytest

from skyline_tui.comparison.rule import IN_ONE_PROCESS, Drift
from skyline_tui.predictions.fits import (
    fit_linear,
    interpolated,
    iteration_ms_at,
    largest_batch_that_fits,
    max_samples_per_second,
    peak_bytes_at,
    reserved_per_allocated,
    time_model,
)
from skyline_tui.report import BatchSample, LinearFit, Predictions


def make(time_fit=None, mem_fit=None, max_batch_size=None) -> Predictions:
    return Predictions(samples=(), run_time_ms=time_fit, peak_memory_bytes=mem_fit,
                       predicted_max_samples_per_second=max_samples_per_second(time_fit),
                       max_batch_size=max_batch_size)


def test_fit_linear_recovers_an_exact_line():
    fit = fit_linear([1, 2, 4], [12, 14, 18])  # y = 2x + 10
    assert fit == LinearFit(slope=pytest.approx(2.0), bias=pytest.approx(10.0), r2=pytest.approx(1.0))


def test_fit_linear_least_squares_by_hand():
    # xs 0,1,2 (mean 1, Sxx 2); ys 1,3,2 (mean 2); Sxy = (-1)(-1) + 0 + (1)(0) = 1 -> slope 0.5, bias 1.5.
    # Residuals: 1-1.5, 3-2, 2-2.5 -> SSres = 0.25+1+0.25 = 1.5; SStot = 1+1+0 = 2 -> R² = 0.25.
    fit = fit_linear([0, 1, 2], [1, 3, 2])
    assert fit.slope == pytest.approx(0.5)
    assert fit.bias == pytest.approx(1.5)
    assert fit.r2 == pytest.approx(0.25)


@pytest.mark.parametrize("xs, ys", [
    ([], []),
    ([4], [10.0]),  # one point: no slope
    ([4, 4, 4], [1.0, 2.0, 3.0]),  # one distinct x
    ([1, 2], [1.0]),  # mismatched lengths
    ([1, 2], [1.0, float("nan")]),
    ([1, float("inf")], [1.0, 2.0]),
])
def test_fit_linear_degenerate_inputs_give_none(xs, ys):
    assert fit_linear(xs, ys) is None


def test_fit_linear_flat_data_is_a_perfect_horizontal_fit():
    fit = fit_linear([1, 2, 3], [5.0, 5.0, 5.0])
    assert (fit.slope, fit.bias, fit.r2) == (pytest.approx(0.0), pytest.approx(5.0), 1.0)


def test_time_queries_at_a_batch_size():
    pred = make(LinearFit(slope=2.0, bias=10.0, r2=1.0))  # t(b) = 2b + 10 ms
    assert iteration_ms_at(pred, 20) == pytest.approx(50.0)
    assert max_samples_per_second(pred.run_time_ms) == pytest.approx(500.0)
    assert iteration_ms_at(pred, 0) is None
    assert iteration_ms_at(make(), 20) is None


def test_negative_predicted_time_is_no_answer():
    pred = make(LinearFit(slope=1.0, bias=-50.0, r2=0.9))
    assert iteration_ms_at(pred, 10) is None
    assert iteration_ms_at(pred, 60) == pytest.approx(10.0)


@pytest.mark.parametrize("slope", [0.0, -0.5])
def test_max_throughput_is_meaningless_without_a_positive_slope(slope):
    assert max_samples_per_second(LinearFit(slope=slope, bias=10.0, r2=1.0)) is None
    assert max_samples_per_second(None) is None


def test_max_throughput_is_meaningless_when_the_fit_explains_little():
    assert max_samples_per_second(LinearFit(slope=2.0, bias=10.0, r2=0.3)) is None
    assert max_samples_per_second(LinearFit(slope=2.0, bias=10.0, r2=0.6)) == pytest.approx(500.0)


def test_max_throughput_is_at_the_largest_batch_that_fits_when_memory_bounds_it():
    fit = LinearFit(slope=2.0, bias=10.0, r2=1.0)  # t(b) = 2b + 10 ms: 500 samples/s as b grows
    assert max_samples_per_second(fit, max_batch_size=20) == pytest.approx(400.0)  # 20 * 1000 / 50
    assert max_samples_per_second(fit, max_batch_size=None) == pytest.approx(500.0)


def test_memory_queries():
    mib = 1 << 20
    pred = make(mem_fit=LinearFit(slope=3 * mib, bias=100 * mib, r2=1.0))  # 3 MiB per sample + 100 MiB
    assert peak_bytes_at(pred, 10) == 130 * mib
    assert peak_bytes_at(pred, 0) is None
    assert peak_bytes_at(make(), 10) is None


def test_largest_batch_that_fits():
    fit = LinearFit(slope=3.0, bias=100.0, r2=1.0)
    assert largest_batch_that_fits(fit, 1000.0) == 300
    assert largest_batch_that_fits(fit, 1000.0, limit=255) == 255
    assert largest_batch_that_fits(fit, 102.0) == 0  # 103 bytes needed for batch 1
    assert largest_batch_that_fits(fit, None) is None
    assert largest_batch_that_fits(None, 1000.0) is None
    flat = LinearFit(slope=0.0, bias=100.0, r2=1.0)
    assert largest_batch_that_fits(flat, 1000.0) is None  # unbounded: no answer without a limit
    assert largest_batch_that_fits(flat, 1000.0, limit=64) == 64
    assert largest_batch_that_fits(flat, 50.0, limit=64) == 0


def test_what_the_allocator_reserves_per_allocated_byte_is_read_at_the_largest_batch_that_measured_it():
    mib = 1 << 20
    samples = (
        BatchSample(batch_size=32, iteration_ms=1.0, peak_bytes=10 * mib, reserved_peak_bytes=14 * mib),  # 1.4
        BatchSample(batch_size=256, iteration_ms=8.0, peak_bytes=100 * mib, reserved_peak_bytes=110 * mib),  # 1.1
        BatchSample(batch_size=512, iteration_ms=16.0, peak_bytes=190 * mib),  # a probe's: no peaks at all
        BatchSample(batch_size=1024, iteration_ms=32.0, peak_bytes=None),
    )
    # Not the 2 MiB rounding that weighs on batch 32: 110 / 100 at batch 256.
    assert reserved_per_allocated(samples) == pytest.approx(1.1)
    assert reserved_per_allocated(samples[:1]) == pytest.approx(1.4)
    assert reserved_per_allocated(samples[2:]) == 1.0  # CPU (or a report from before it was recorded)
    assert reserved_per_allocated(()) == 1.0
    # Reserved below allocated (the profiled batch's inputs taken out of both, rounded apart): never below 1.
    assert reserved_per_allocated([BatchSample(8, 1.0, 100, reserved_peak_bytes=90)]) == 1.0


def test_weighted_fit_by_hand():
    # Weights 1,1,2 on (0,1), (1,3), (2,2): Σw=4, x̄=(0+1+4)/4=1.25, ȳ=(1+3+4)/4=2.
    # Sxx = 1.5625 + 0.0625 + 2*0.5625 = 2.75; Sxy = (-1.25)(-1) + (-0.25)(1) + 2(0.75)(0) = 1.
    fit = fit_linear([0, 1, 2], [1, 3, 2], weights=[1, 1, 2])
    assert fit.slope == pytest.approx(1 / 2.75)
    assert fit.bias == pytest.approx(2 - 1.25 / 2.75)


def test_weighted_fit_with_equal_weights_is_the_plain_fit():
    assert fit_linear([0, 1, 2], [1, 3, 2], weights=[3, 3, 3]) == fit_linear([0, 1, 2], [1, 3, 2])


@pytest.mark.parametrize("weights", [[1, 0, 1], [1, -1, 1], [1, 1], [1, float("nan"), 1]])
def test_weighted_fit_rejects_bad_weights(weights):
    assert fit_linear([0, 1, 2], [1, 3, 2], weights=weights) is None


def test_relative_weights_follow_the_small_points():
    # Absolute least squares is pulled by the large value at x=8 (slope 2.18, bias -2.44: a negative time
    # at x=1); with 1/y² weights every point counts by its relative error and x=1 stays near 1.
    xs, ys = [1, 2, 4, 8], [1.0, 2.0, 4.0, 16.0]
    plain = fit_linear(xs, ys)
    assert plain.slope * 1 + plain.bias < 0
    relative = fit_linear(xs, ys, weights=[1 / y ** 2 for y in ys])
    assert relative.slope * 1 + relative.bias == pytest.approx(1.0, abs=0.25)


def test_the_ui_side_modules_import_no_torch():
    code = ("import sys, skyline_tui.predictions.fits, skyline_tui.rewrite; "
            "bad = [m for m in ('torch', 'textual', 'rich') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr


def test_interpolated_joins_the_points_and_continues_the_end_segments():
    # (10, 20), (20, 30), (40, 90): slopes 1 then 3 ms per sample (a kink, as when a cache overflows).
    points = [(40, 90.0), (10, 20.0), (20, 30.0)]  # any order
    assert interpolated(points, 20) == pytest.approx(30.0)  # a measured point is itself
    assert interpolated(points, 15) == pytest.approx(25.0)  # halfway along the first segment
    assert interpolated(points, 30) == pytest.approx(60.0)  # halfway along the second: 30 + 3 * 10
    assert interpolated(points, 50) == pytest.approx(120.0)  # beyond: the last segment's slope, 90 + 3 * 10
    assert interpolated(points, 5) == pytest.approx(15.0)  # below: the first segment's slope, 20 - 1 * 5
    # A falling end segment (noise) says nothing about the trend beyond it; inside, it is still joined.
    falling = [(10, 20.0), (20, 30.0), (40, 28.0)]
    assert interpolated(falling, 50) is None and interpolated(falling, 30) == pytest.approx(29.0)
    assert interpolated([(10, 20.0)], 10) is None  # one point: no curve
    assert interpolated([(10, 20.0), (10, 21.0)], 10) is None  # one distinct batch size


def test_iteration_ms_follows_the_measured_points_where_a_line_cannot():
    # A kinked curve (1, then 5 ms per extra sample): the least-squares line through it misses between the
    # points; the prediction does not.
    samples = tuple(BatchSample(batch_size=b, iteration_ms=ms, peak_bytes=None)
                    for b, ms in ((10, 20.0), (20, 30.0), (40, 130.0)))
    line = fit_linear([10, 20, 40], [20.0, 30.0, 130.0])
    pred = Predictions(samples=samples, run_time_ms=line, peak_memory_bytes=None,
                       predicted_max_samples_per_second=None, max_batch_size=None, time_model="points")
    assert iteration_ms_at(pred, 15) == pytest.approx(25.0)
    assert abs(line.slope * 15 + line.bias - 25.0) > 0.1 * 25.0  # the line alone: more than 10 % off
    assert iteration_ms_at(pred, 30) == pytest.approx(80.0)
    assert iteration_ms_at(pred, 80) == pytest.approx(330.0)  # 130 + 5 * 40
    # Where the points say nothing (a falling end), the line answers.
    noisy = Predictions(samples=samples[:2] + (BatchSample(batch_size=40, iteration_ms=28.0, peak_bytes=None),),
                        run_time_ms=LinearFit(slope=0.5, bias=10.0, r2=0.9), peak_memory_bytes=None,
                        predicted_max_samples_per_second=None, max_batch_size=None, time_model="points")
    assert iteration_ms_at(noisy, 100) == pytest.approx(60.0)
    # With the "line" model the same report answers from the line everywhere, measured batches included.
    as_line = dataclasses.replace(pred, time_model="line")
    assert iteration_ms_at(as_line, 20) == pytest.approx(line.slope * 20 + line.bias)


def test_the_most_throughput_is_taken_at_the_largest_batch_from_the_measured_time_there():
    fit = LinearFit(slope=2.0, bias=10.0, r2=1.0)
    # 40 samples in 100 ms (what the points say at batch 40) -> 400 samples/s; the line would say 40/90 ms.
    assert max_samples_per_second(fit, max_batch_size=40, ms_at_max=100.0) == pytest.approx(400.0)
    assert max_samples_per_second(fit, max_batch_size=40) == pytest.approx(40 * 1000.0 / 90.0)


def test_the_line_is_the_model_only_where_it_passes_within_every_points_noise():
    line = LinearFit(slope=2.0, bias=10.0, r2=1.0)  # 12, 14, 18 at x = 1, 2, 4
    # Residuals 0.5, -1.0, 0.0: the second point's tolerance 0.9 is exceeded; with 1.0 every point is on it.
    assert time_model(line, [1, 2, 4], [12.5, 13.0, 18.0], [0.5, 0.9, 0.1]) == "points"
    assert time_model(line, [1, 2, 4], [12.5, 13.0, 18.0], [0.5, 1.0, 0.1]) == "line"
    assert time_model(None, [1, 2], [12, 14], [1, 1]) == "points"
    assert time_model(line, [1, 2], [12, 14], [1]) == "points"  # inputs that do not line up


def test_on_a_bent_curve_the_most_throughput_can_be_at_a_measured_middle_batch():
    fit = LinearFit(slope=2.0, bias=10.0, r2=0.9)
    # Measured: 64 samples in 8 ms (8,000/s) beats the largest batch that fits, 512 in 100 ms (5,120/s);
    # 1024 samples in 50 ms would be more, but it does not fit (max_batch_size 512).
    measured = [(32, 10.0), (64, 8.0), (1024, 50.0)]
    assert max_samples_per_second(fit, max_batch_size=512, ms_at_max=100.0, measured=measured) == \
        pytest.approx(8000.0)
    assert max_samples_per_second(fit, max_batch_size=512, ms_at_max=100.0) == pytest.approx(5120.0)


def test_points_measured_in_processes_of_their_own_are_judged_against_the_drift_between_them():
    # The held-out convnet's case: a line through 37, 69 and 133 ms (1 ms per sample + 5) at 32, 64 and 128,
    # and batch 128 read 157 ms in one profile (122 and 137 in two others): 24 ms, 18 %, off the line.
    line = LinearFit(slope=1.0, bias=5.0, r2=0.99)
    xs, ys = [32, 64, 128], [37.5, 68.0, 157.0]
    tolerances = [0.05 * y for y in ys]  # the line's 5 % allowance: 1.875, 3.4 and 7.85 ms
    # Measured in one process (no drift), or the drift not asked: 24 ms > 7.85 ms, the points.
    assert time_model(line, xs, ys, tolerances) == "points"
    assert time_model(line, xs, ys, tolerances, IN_ONE_PROCESS) == "points"
    # A drift of 2 % a process: 7.85 + 2 * 0.02 * 157 = 14.13 ms < 24: still a bend.
    assert time_model(line, xs, ys, tolerances, Drift(sigma=0.02)) == "points"
    # A drift of 10 %: 7.85 + 2 * 0.10 * 157 = 39.25 ms > 24: the line, which averages that noise.
    assert time_model(line, xs, ys, tolerances, Drift(sigma=0.10)) == "line"
    # Unknown drift (each point in a process of its own, nothing to learn it from): 157 / 133 = 1.18x is
    # within what drift alone has done here (2x): not a bend it can claim.
    assert time_model(line, xs, ys, tolerances, Drift(sigma=None)) == "line"
    # 340 ms where the line says 133 (2.56x) is a bend whatever the drift.
    assert time_model(line, xs, [37.5, 68.0, 340.0], tolerances, Drift(sigma=None)) == "points"
