"""The real app with the real worker client profiling samples/mlp (torch in a child process)."""

from __future__ import annotations

import importlib.util

import pytest

from app_support import MLP_ENTRY, FakeGpu, text_of, wait_until
from skyline_tui.config import ProfileConfig

HAS_CLIENT = importlib.util.find_spec("skyline_tui.worker.client") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None


def phases_present() -> dict[str, bool]:
    """Ask only for the phases whose profiler modules are merged (all of them, once the branches meet)."""
    return {
        phase: importlib.util.find_spec(f"skyline_tui.profiler.{phase}") is not None
        for phase in ("breakdown", "memory", "predictions")
    }

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAS_CLIENT, reason="skyline_tui.worker.client is not merged into this branch yet"),
    pytest.mark.skipif(not HAS_TORCH, reason="the worker needs torch"),
]


async def test_the_app_profiles_the_mlp_sample_with_the_real_worker():
    from skyline_tui.tui.app import SkylineApp
    from skyline_tui.tui.views.breakdown import BreakdownTable
    from skyline_tui.tui.views.throughput import ThroughputPane
    from skyline_tui.worker.client import WorkerClient

    phases = phases_present()
    app = SkylineApp(str(MLP_ENTRY), config=ProfileConfig.quick(**phases), source=WorkerClient, gpu=FakeGpu())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.live.reports_received > 0 and app.run_state.phase is None, timeout=50)
        assert app.live.error is None, app.live.error
        shown = app.live.shown
        assert shown.throughput is not None and shown.throughput.samples_per_second > 0
        assert shown.batch_size == 64
        assert "samples/s" in text_of(app.query_one(ThroughputPane))
        if phases["breakdown"]:
            assert shown.breakdown is not None and app.query_one(BreakdownTable).row_count >= 2
