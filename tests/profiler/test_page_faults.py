"""Page faults per iteration are counted and costed, and a run that spends its time on them says so.

Against known allocations: fresh anonymous pages touched one byte each fault once per page, so an entry
point that maps and touches 1,024 new pages every iteration takes at least 1,024 faults an iteration."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import mmap
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app_support import finished, load_report, make_app, text_of, wait_until
from conftest import QUICK_FLAGS, TINY_ENTRY, alone, cli_env, run_cli
from skyline_tui.profiler.faults import FaultCounter, cost_per_fault_us, fault_cost_us, minor_faults
from skyline_tui.profiler.timing import measure_until_stable
from skyline_tui.presentation import STEADY_MALLOC_TOP_PAD
from skyline_tui.tui.views.throughput import ThroughputPane

PAGES = 1024
COUNTED = minor_faults() is not None


def _touch_fresh_pages(pages: int) -> None:
    region = mmap.mmap(-1, pages * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with region:
        with contextlib.suppress(OSError):  # a kernel without huge pages: 4 KiB pages anyway
            region.madvise(mmap.MADV_NOHUGEPAGE)  # one fault per 4 KiB page even where huge pages are always on
        for offset in range(0, pages * mmap.PAGESIZE, mmap.PAGESIZE):
            region[offset] = 1


@pytest.mark.skipif(not COUNTED, reason="this OS reports no page faults")
def test_the_counter_sees_each_fresh_page_fault_once():
    counter = FaultCounter()
    counter.start()
    _touch_fresh_pages(PAGES)
    faults = counter.count()
    assert faults is not None and PAGES <= faults < PAGES + 200, faults
    cost = fault_cost_us()
    assert cost is not None and cost > 0.0


def test_a_preempted_calibration_round_does_not_move_what_a_fault_costs():
    # Three rounds over 2,048 fresh pages: a clean one (2.6 ms faulting, 0.3 ms looping again), one whose faulting
    # loop was preempted (8 ms), one whose plain loop was (2.9 ms).  By hand: (2.6 - 0.3) ms / 2,048 = 1.123 us.
    # Any one round alone would say 1.123, 3.76 or 0 us (one round was all the calibration took before).
    clean, faulting_preempted, loop_preempted = (2_600_000, 300_000, 2048), (8_000_000, 300_000, 2048), \
        (2_650_000, 2_900_000, 2048)
    expected = (2_600_000 - 300_000) / 1000.0 / 2048
    for rounds in ([clean, faulting_preempted, loop_preempted], [loop_preempted, faulting_preempted, clean]):
        assert cost_per_fault_us(rounds) == pytest.approx(expected)
    assert cost_per_fault_us([]) is None


# The tiny entry point, mapping and touching 1,024 fresh pages (4 MiB) in every iteration.
FAULTING_ENTRY = TINY_ENTRY.replace("import torch\n", "import mmap\n\nimport torch\n", 1).replace(
    "        optimizer.step()\n",
    "        optimizer.step()\n"
    f"        region = mmap.mmap(-1, {PAGES} * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)\n"
    "        try:\n            region.madvise(mmap.MADV_NOHUGEPAGE)\n        except OSError:\n            pass\n"
    f"        for offset in range(0, {PAGES} * mmap.PAGESIZE, mmap.PAGESIZE):\n"
    "            region[offset] = 1\n"
    "        region.close()\n")


# Faults that grow with the batch, as a large batch's blocks outgrowing what the allocator keeps do: 256
# fresh pages per sample in every iteration (2 samples: 512 pages ... 32 samples: 8,192 pages, 32 MiB).  At the
# tiny entry's default batch of 4 that is PAGES, as FAULTING_ENTRY maps.
PAGES_PER_SAMPLE = 256
GROWING_ENTRY = FAULTING_ENTRY.replace(f"{PAGES} * mmap.PAGESIZE", f"{PAGES_PER_SAMPLE} * x.shape[0] * mmap.PAGESIZE")


@pytest.fixture(scope="module")
def growing_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One CLI run of GROWING_ENTRY, throughput and predictions: its headline (batch 4, PAGES fresh pages an
    iteration) is read by the test of a faulting iteration, its points by the test of each point's faults."""
    path = tmp_path_factory.mktemp("growing") / "entry.py"
    path.write_text(GROWING_ENTRY)
    # Its readers judge the faults' share of each iteration, which the other tests' load beside it changes (two
    # xdist workers once pushed batch 8's share under a tenth): measured while no other test runs.
    with alone(tmp_path_factory):
        result = run_cli(str(path), "--json", "-", "--no-breakdown", "--no-memory", "--no-health", "--no-history",
                         *QUICK_FLAGS)
    return path, result


def _throughput_only(path) -> tuple[dict, str]:
    result = run_cli(str(path), "--json", "-", "--no-breakdown", "--no-memory", "--no-health", "--no-predictions",
                     "--no-history", *QUICK_FLAGS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["throughput"], result.stderr


@pytest.mark.skipif(not COUNTED, reason="this OS reports no page faults")
def test_an_iteration_that_faults_in_fresh_memory_is_counted_costed_and_named(growing_run):
    path, result = growing_run
    assert f"{PAGES_PER_SAMPLE} * x.shape[0] * mmap.PAGESIZE" in path.read_text()
    assert result.returncode == 0, result.stderr
    report, stderr = json.loads(result.stdout), result.stderr
    assert report["batch_size"] * PAGES_PER_SAMPLE == PAGES  # the headline maps PAGES fresh pages an iteration
    throughput = report["throughput"]
    faults, cost_ms = throughput["page_faults_per_iteration"], throughput["page_fault_ms"]
    assert PAGES <= faults < PAGES * 1.25, throughput
    # Costed: each fault at what a minor fault costs on any current Linux, a fraction of a microsecond to a
    # few (1.1-1.8 us on this machine, quiet), up to 50 us for a calibration on a loaded machine (5.9 us was
    # seen with both cores busy); a slip of units or of the count is 1000x off.  (Not a share of the
    # iteration: the iteration's wall time and the calibration's are inflated by different loads.)
    assert 0.05 <= cost_ms * 1000 / faults <= 50, throughput
    if "the machine was busy" not in stderr:
        # On a quiet machine the iteration does little besides faulting: a large share of its time, named.
        # (On a busy one, which the run names instead, other tasks' time inflates the iteration: with both
        # cores busy the faults read 6 ms of a 76 ms iteration, and no share of it is promised.)
        assert cost_ms >= 0.1 * throughput["iteration_ms"], throughput
        # (Its own line: the predictions' line, "... at batch size ...", names the larger points.)
        headline = "\n".join(line for line in stderr.splitlines() if "at batch size" not in line)
        assert "page faults" in headline and f"MALLOC_TOP_PAD_={STEADY_MALLOC_TOP_PAD}" in headline, stderr


@pytest.mark.skipif(not COUNTED, reason="this OS reports no page faults")
def test_an_iteration_that_reuses_its_memory_takes_no_faults_and_no_warning(write_entry):
    throughput, stderr = _throughput_only(write_entry(TINY_ENTRY))
    # A few one-off faults (the measurement's own lists growing) over as few as 9 timed iterations read 2-9.
    assert throughput["page_faults_per_iteration"] < 64, throughput
    assert "page faults" not in stderr, stderr


async def test_the_throughput_pane_names_faulting_only_when_it_costs_a_tenth_of_the_iteration():
    mlp = load_report("mlp_cpu")
    iteration_ms = mlp.throughput.iteration_ms
    for share, expected in ((0.5, True), (0.05, False), (None, False)):
        cost = None if share is None else share * iteration_ms
        report = mlp.replace(throughput=dataclasses.replace(mlp.throughput, page_faults_per_iteration=1000.0,
                                                            page_fault_ms=cost))
        app, _ = make_app([(report, True)])
        async with app.run_test(size=(80, 24)) as pilot:  # whole at 80 columns, not cut to "· page faul…"
            await wait_until(pilot, lambda app=app: finished(app))
            shown = text_of(app.query_one(ThroughputPane))
        assert ("page faults ≈" in shown) is expected, (share, shown)
        if expected:
            assert f"page faults ≈ {cost:.2f} ms of it" in shown, shown


@pytest.mark.skipif(not COUNTED, reason="this OS reports no page faults")
def test_each_predictions_point_counts_its_own_faults_and_the_cli_names_the_faulting_ones(growing_run):
    path, result = growing_run
    assert f"{PAGES_PER_SAMPLE} * x.shape[0] * mmap.PAGESIZE" in path.read_text()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    samples = {s["batch_size"]: s for s in report["predictions"]["samples"]}
    assert len(samples) >= 4 and report["batch_size"] in samples, samples
    for batch, point in samples.items():
        # Its timed iterations' faults only: the pages it maps, and the few the measurement itself adds.
        assert batch * PAGES_PER_SAMPLE <= point["page_faults_per_iteration"] < batch * PAGES_PER_SAMPLE * 1.25 + 64, \
            (batch, point)
        assert point["page_fault_ms"] > 0, point
    headline = samples[report["batch_size"]]
    assert headline["page_faults_per_iteration"] == report["throughput"]["page_faults_per_iteration"]
    # The tiny model's own work is a fraction of a millisecond: every point above it spends most of its time
    # faulting, and the CLI names them with their share.
    larger = sorted(b for b in samples if b > report["batch_size"])
    line = next(line for line in result.stderr.splitlines() if "at batch size" in line)
    for batch in larger:
        point = samples[batch]
        assert f"{batch} ({point['page_fault_ms']:.1f} of {point['iteration_ms']:.1f} ms)" in line, line
    assert "predictions include that time" in line and f"MALLOC_TOP_PAD_={STEADY_MALLOC_TOP_PAD}" in line, line


def test_the_fault_window_counts_every_iteration_timed_not_only_those_kept():
    # Rounds that never agree (tolerance below zero): 4 rounds of 1 run, the first dropped from the result,
    # all 4 inside the window whose faults are divided by the iterations.
    calls = []
    result = measure_until_stable(lambda: calls.append(1), torch.device("cpu"), round_iterations=1, min_rounds=2,
                                  tolerance=-1.0, budget_s=60.0, max_rounds=4)
    assert len(calls) == 4 and result.iterations_run == 4 and len(result.samples_ms) == 3


def test_the_worker_measures_a_faults_cost_once_before_it_forks():
    # Every run child inherits the measurement instead of paying it (a few ms) on the way to its first number.
    code = ("from skyline_tui.worker.child import preload; preload(); "
            "from skyline_tui.profiler.faults import fault_cost_us; print(fault_cost_us.cache_info().currsize)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "1", (done.stdout, done.stderr)
