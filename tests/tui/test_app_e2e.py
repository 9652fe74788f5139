"""The real app with the real worker client profiling samples/mlp (torch in a child process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app_support import MLP_ENTRY, FakeGpu, text_of, wait_until
from skyline_tui.config import ProfileConfig

pytestmark = pytest.mark.slow


async def test_the_app_profiles_the_mlp_sample_with_the_real_worker():
    from skyline_tui.tui.app import SkylineApp
    from skyline_tui.tui.views.breakdown import BreakdownTable
    from skyline_tui.tui.views.throughput import ThroughputPane
    from skyline_tui.worker.client import WorkerClient

    app = SkylineApp(str(MLP_ENTRY), config=ProfileConfig.quick(), source=WorkerClient, gpu=FakeGpu())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.live.reports_received > 0 and app.state.run.phase is None, timeout=120)
        assert app.live.error is None, app.live.error
        shown = app.live.shown
        assert shown.batch_size == 64  # samples/mlp/entry.py's default
        assert shown.throughput is not None and shown.throughput.samples_per_second > 0
        assert "samples/s" in text_of(app.query_one(ThroughputPane))
        # Every phase ran: the sections are there, and the breakdown's rows reached the table.
        assert shown.breakdown is not None and app.query_one(BreakdownTable).row_count >= 2
        assert shown.memory is not None and shown.memory.weights_bytes > 0
        assert shown.predictions is not None
        # Against the sample itself: Linear(784, w) -> Linear(w, w) -> Linear(w, 10) in float32, w its WIDTH for
        # the device; and each breakdown row quotes the line of the file it names.
        w = 4096 if shown.device.type == "cuda" else 512  # samples/mlp/entry.py's WIDTH
        assert shown.memory.weights_bytes == (784 * w + w + w * w + w + w * 10 + 10) * 4
        for row in shown.breakdown.lines:
            source = (Path(shown.project_root) / row.file).read_text().splitlines()
            assert source[row.line - 1].strip() == row.code, row
