"""A busy machine is named, not hidden: the throughput carries the share of its measurement during which
some task waited for a CPU (Linux pressure stall information), and the CLI and the app warn when it is high.
Against real contention: busy processes, one per core and one more, beside a real measurement."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types

import pytest

from app_support import finished, load_report, make_app, text_of, wait_until
from conftest import QUICK_FLAGS, TINY_ENTRY, run_cli
from skyline_tui.config import ProfileConfig
from skyline_tui.profiler import timing
from skyline_tui.profiler.entry import load_entry_point
from skyline_tui.profiler.run import load_workload, measure_throughput
from skyline_tui.profiler.timing import ContentionClock, cpu_stall_us
from skyline_tui.presentation import CONTENDED
from skyline_tui.tui.views.throughput import ThroughputPane

PSI = "some avg10=18.20 avg60=15.06 avg300=5.82 total={total}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
HAS_PSI = cpu_stall_us() is not None


def test_the_stall_counter_is_read_from_the_some_line(tmp_path):
    pressure = tmp_path / "cpu"
    pressure.write_text(PSI.format(total=2867092182))
    assert cpu_stall_us(str(pressure)) == 2867092182
    assert cpu_stall_us(str(tmp_path / "missing")) is None  # a kernel without PSI
    pressure.write_text("some avg10=1.0\n")
    assert cpu_stall_us(str(pressure)) is None  # no total: nothing to say


def test_the_contention_share_is_stalled_time_over_wall_time(tmp_path, monkeypatch):
    # 1.5 s of stall over 2 s of wall time: 75 %, by hand.  The wall clock is stepped by the test.
    pressure = tmp_path / "cpu"
    wall = iter([100.0, 102.0])
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(monotonic=lambda: next(wall)))
    clock = ContentionClock(str(pressure))
    pressure.write_text(PSI.format(total=1_000_000))
    clock.start()
    pressure.write_text(PSI.format(total=2_500_000))
    assert clock.share() == pytest.approx(0.75)


BUSY = "import sys\nprint('spinning', flush=True)\nwhile True:\n    pass\n"


def _busy_processes() -> list[subprocess.Popen[str]]:
    """One spinning process per core and one more, each already spinning when this returns."""
    busy = [subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True)
            for _ in range((os.cpu_count() or 1) + 1)]
    for process in busy:
        assert process.stdout is not None and process.stdout.readline().strip() == "spinning"
    return busy


# The tiny entry point, with 5 ms of spinning per iteration: rounds long enough for the others to run in.
SPINNING_ENTRY = TINY_ENTRY.replace("import torch\n", "import time\n\nimport torch\n", 1).replace(
    "        optimizer.step()\n",
    "        optimizer.step()\n        until = time.perf_counter() + 0.005\n"
    "        while time.perf_counter() < until:\n            pass\n")


@pytest.mark.alone  # its busy processes, one per core and one more, would load the tests beside it
@pytest.mark.skipif(not HAS_PSI, reason="the kernel has no /proc/pressure/cpu")
def test_a_measurement_beside_busy_processes_says_the_cpu_was_contended(write_entry):
    path = write_entry(SPINNING_ENTRY)
    assert "perf_counter() + 0.005" in path.read_text()
    entry = load_entry_point(path)
    work = load_workload(entry, entry.default_batch_size)
    busy = _busy_processes()
    try:
        throughput = measure_throughput(work, ProfileConfig.quick(throughput_budget_s=1.0))
        result = run_cli(str(path), "--json", "-", "--no-breakdown", "--no-memory", "--no-health",
                         "--no-predictions", "--no-history", *QUICK_FLAGS)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert throughput.cpu_contention is not None and throughput.cpu_contention >= CONTENDED, throughput
    assert result.returncode == 0, result.stderr
    assert "warning: other tasks waited for a CPU during" in result.stderr, result.stderr


async def test_the_throughput_pane_names_a_busy_cpu_only_when_it_was():
    mlp = load_report("mlp_cpu")
    for share, expected in ((0.81, True), (0.1, False), (None, False)):
        report = mlp.replace(throughput=dataclasses.replace(mlp.throughput, cpu_contention=share))
        app, _ = make_app([(report, True)])
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda app=app: finished(app))
            shown = text_of(app.query_one(ThroughputPane))
        assert ("busy CPU 81%" in shown) is expected and ("busy CPU" in shown) is expected, (share, shown)
