"""The look of the main screen, pinned as SVG snapshots (update with `pytest --snapshot-update`).

The reports are fixed fixtures, the clock is frozen and the GPU is a fake, so nothing on screen varies
between runs.
"""

from __future__ import annotations

from app_support import MLP_ENTRY, TRANSFORMER_ENTRY, FakeGpu, FakeSourceFactory, fixed_clock, load_report, wait_until
from skyline_tui.tui.app import SkylineApp
from skyline_tui.tui.views.source import SourceView


def app_with(fixture: str, entry, *more_runs) -> SkylineApp:
    runs = [[(load_report(fixture), True)], *more_runs]
    # The recorded reports name files from the sample's folder: it is the root (not the enclosing checkout).
    return SkylineApp(str(entry), str(entry.parent), source=FakeSourceFactory(*runs), gpu=FakeGpu(),
                      clock=fixed_clock)


async def until_idle(pilot) -> None:
    app = pilot.app
    source = app.query_one(SourceView)
    await wait_until(pilot, lambda: app.live.shown is not None and app.state.run.phase is None and source.highlighted)


def test_main_screen_80x24(snap_compare):
    assert snap_compare(app_with("mlp_cpu", MLP_ENTRY), terminal_size=(80, 24), run_before=until_idle)


def test_main_screen_160x48(snap_compare):
    app = app_with("transformer_cuda", TRANSFORMER_ENTRY)
    assert snap_compare(app, terminal_size=(160, 48), run_before=until_idle)


def test_target_batch_that_does_not_fit_80x24(snap_compare):
    app = app_with("transformer_cuda", TRANSFORMER_ENTRY)

    async def run_before(pilot):
        await until_idle(pilot)
        await pilot.press("right_square_bracket", "right_square_bracket")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_failed_run_beside_the_last_good_report_100x30(snap_compare):
    app = app_with("mlp_cpu", MLP_ENTRY, [(load_report("mlp_error"), True)])

    async def run_before(pilot):
        await until_idle(pilot)
        await pilot.press("r")
        await wait_until(pilot, lambda: pilot.app.live.error is not None and pilot.app.state.run.phase is None)
        await wait_until(pilot, lambda: pilot.app.query_one(SourceView).highlighted)

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


async def module_tree(pilot) -> None:
    await until_idle(pilot)
    await pilot.press("tab", "m")  # the breakdown pane, as the module tree


def test_module_tree_80x24(snap_compare):
    app = app_with("transformer_cuda", TRANSFORMER_ENTRY)
    assert snap_compare(app, terminal_size=(80, 24), run_before=module_tree)


def test_module_tree_160x48(snap_compare):
    app = app_with("transformer_cuda", TRANSFORMER_ENTRY)
    assert snap_compare(app, terminal_size=(160, 48), run_before=module_tree)
