"""The Health pane: rows from a hand-written health section beside the MLP fixture's breakdown."""

from __future__ import annotations

from app_support import finished, load_report, make_app, text_of, wait_until
from skyline_tui.report import Health, HealthError, HealthFlag, MetricSeries, ModuleHealth, NonFinite
from skyline_tui.tui.health_rows import health_rows, non_finite_banner

MLP = load_report("mlp_cpu")  # breakdown: iteration 21.4 ms; fc1 1.31 + 2.35, fc2 3.85 + 7.9, fc3 0.21 + 0.26


def series(*values: float) -> MetricSeries:
    return MetricSeries(last=values[-1], median=sorted(values)[len(values) // 2], series=values)


HEALTH = Health(
    iterations=3,
    modules=(
        ModuleHealth("fc1", "Linear", "entry.py", 19, {"update_to_weight": series(1e-3, 2e-3, 3e-3)}),
        ModuleHealth("fc2", "Linear", "entry.py", 20, {"update_to_weight": series(1e-3, 1e-3, 1e-3)}),
        ModuleHealth("fc3", "Linear", "entry.py", 21, {"update_to_weight": series(0.5, 0.4, 0.3)},
                     (HealthFlag("update_ratio_high", "lower this layer's learning rate"),)),
    ),
    non_finite=NonFinite(module=None, phase="forward", file="entry.py", line=37, iteration=2, message="log"),
    errors=(HealthError("broken", "ValueError: no", "metrics.py", 4),),
)


def test_flagged_modules_come_first_then_the_costliest_with_their_share_of_the_iteration():
    rows = health_rows(HEALTH, MLP.breakdown)
    assert [row.module for row in rows] == ["fc3", "fc2", "fc1"]
    shares = {row.module: row.share for row in rows}
    assert shares["fc2"] == (3.85 + 7.9) / 21.4
    assert shares["fc3"] == (0.21 + 0.26) / 21.4
    assert rows[0].series == (0.5, 0.4, 0.3) and rows[0].flags == ("update_ratio_high",)
    assert health_rows(HEALTH)[0].share is None  # no breakdown: no share, still a row


async def test_a_dead_relu_s_row_shows_its_share_of_dead_units_in_per_cent():
    from skyline_tui.tui.views.health import HealthPane

    relu = ModuleHealth("relu", "ReLU", "entry.py", 22, {"activation_std": series(0.2, 0.1, 0.09),
                                                         "dead_fraction": series(0.5, 0.9, 0.92)},
                        (HealthFlag("dead_units", "92% of its units output zero for every sample"),))
    health = Health(iterations=3, modules=(*HEALTH.modules, relu))
    row = next(row for row in health_rows(health) if row.module == "relu")
    assert (row.module, row.metric, row.series, row.last) == ("relu", "dead_fraction", (0.5, 0.9, 0.92), 0.92)
    app, _ = make_app([(MLP.replace(health=health), True)])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("H")
        pane = app.query_one(HealthPane)
        await wait_until(pilot, lambda: pane.display)
        shown = next(" ".join(text_of(widget) for widget in view.query("Label"))
                     for view in pane.query("HealthRowView") if view.row.module == "relu")
        assert "92%" in shown and "dead_units" in shown, shown


def test_the_banner_names_the_line_phase_and_iteration():
    assert non_finite_banner(HEALTH) == "NaN/Inf first at entry.py:37 (forward, iteration 2): log"


async def test_h_shows_the_pane_enter_jumps_to_the_module_line_and_e_to_the_nan():
    from skyline_tui.tui.views.breakdown import BreakdownTable
    from skyline_tui.tui.views.health import HealthPane
    from skyline_tui.tui.views.source import SourceView

    app, _ = make_app([(MLP.replace(health=HEALTH), True)])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        pane = app.query_one(HealthPane)
        assert not pane.display
        await pilot.press("H")
        await wait_until(pilot, lambda: pane.display and not app.query_one(BreakdownTable).display)
        shown = "\n".join(text_of(widget) for widget in pane.query("Static"))  # Labels are Statics
        assert shown.index("fc3") < shown.index("fc2") < shown.index("fc1")
        assert "update_ratio_high" in shown and "NaN/Inf first at entry.py:37" in shown and "broken" in shown
        source = app.query_one(SourceView)
        await pilot.press("j", "enter")  # second row: fc2, called at entry.py:20
        await wait_until(pilot, lambda: source.cursor == 20)
        await pilot.press("e")
        await wait_until(pilot, lambda: source.cursor == 37)


def test_a_phase_error_reads_apart_from_a_metric_error():
    from skyline_tui.tui.views.health import health_error_text

    assert health_error_text(HealthError("broken", "ValueError: no", "metrics.py", 4)) == \
        "metric error: broken: ValueError: no (metrics.py:4)"
    assert health_error_text(HealthError("", "OutOfMemoryError: CUDA out of memory", "entry.py", 17)) == \
        "health phase: OutOfMemoryError: CUDA out of memory (entry.py:17)"


def deep(name: str, flags: tuple[HealthFlag, ...] = ()) -> ModuleHealth:
    return ModuleHealth(name, "Linear", "entry.py", 19, {"update_to_weight": series(1e-3, 2e-3)}, flags)


async def names_at_100_columns(report) -> tuple[list[str], int]:
    """The layer names the Health pane shows for ``report`` at 100x30, and how many share labels it has."""
    from skyline_tui.tui.views.health import HealthPane

    app, _ = make_app([(report, True)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("H")
        pane = app.query_one(HealthPane)
        count = len(report.health.modules)
        await wait_until(pilot, lambda: pane.display and len(pane.query("NameLabel")) == count)
        await pilot.pause()
        return [label.render() for label in pane.query("NameLabel")], len(pane.query(".health-share"))


async def test_in_a_narrow_pane_layers_with_long_shared_names_still_read_apart():
    """A transformer's layers (makemore's: ``transformer.h.0.attn.c_attn`` ...) at 100 columns read ``transfo``
    on every row before: the parts every name shares go, a name still too long loses its start, and the flags
    column is as wide as the flags shown."""
    names = ["model.transformer.h.0.attn.c_attn", "model.transformer.h.0.attn.c_proj",
             "model.transformer.h.11.mlp.c_fc"]
    health = Health(iterations=2, modules=tuple(deep(name) for name in names))
    shown, _ = await names_at_100_columns(MLP.replace(health=health))
    assert sorted(shown) == ["0.attn.c_attn", "0.attn.c_proj", "11.mlp.c_fc"], shown


async def test_without_a_share_of_the_run_time_the_name_takes_its_column():
    """resnet18's flagged layers at 100 columns read ``…r3.0.relu`` and ``…r4.0.relu`` beside an empty share column
    (a live run, or a profile without the breakdown, has none): the column goes and the names read whole."""
    dead = (HealthFlag("dead_units", "dead"),)
    names = ["layer3.0.relu", "layer4.0.relu", "layer4.1.relu"]
    health = Health(iterations=2, modules=(*(deep(name, dead) for name in names),
                                           deep("fc", (HealthFlag("update_ratio_high", "fast"),))))
    shown, shares = await names_at_100_columns(MLP.replace(health=health, breakdown=None))
    assert sorted(shown) == ["fc", *names], shown
    assert shares == 0


def test_a_name_cut_from_the_left_keeps_its_last_parts():
    from skyline_tui.tui.views.format import tail, without_common_prefix

    assert tail("transformer.h.0.attn.c_attn", 12) == "…attn.c_attn"
    assert tail("fc1", 12) == "fc1"
    assert without_common_prefix(["a.b.c", "a.b.d", "a.e"]) == ["b.c", "b.d", "e"]
    assert without_common_prefix(["a.b", "a.b.c"]) == ["b", "b.c"]  # never a whole name
    assert without_common_prefix(["lm_head", "transformer.wte"]) == ["lm_head", "transformer.wte"]
    assert without_common_prefix(["only.one"]) == ["only.one"]
