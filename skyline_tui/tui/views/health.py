"""The Health pane: per layer, its share of the run time beside a sparkline of its metric (a flagged layer:
its flag's) and flags.

Renders rows computed by ``skyline_tui.tui.health_rows``; nothing is computed here.  ``j``/``k`` move,
``enter`` jumps the source pane to the highlighted module's line, ``e`` to the first NaN/Inf's line.
"""

from __future__ import annotations

from typing import Optional

from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, Sparkline, Static

from skyline_tui.comparison.changes import RunComparison
from skyline_tui.report import Breakdown, Health, HealthError
from skyline_tui.tui.health_rows import SHARE_METRICS, HealthRow, health_rows, non_finite_banner
from skyline_tui.tui.views.format import tail, without_common_prefix
from skyline_tui.tui.views.messages import JumpToSource


def health_error_text(error: HealthError) -> str:
    """A subscriber's error, or (no subscriber) why the phase itself could not run."""
    where = f" ({error.file}:{error.line})" if error.file else ""
    if not error.subscriber:
        return f"health phase: {error.message}{where}"
    return f"metric error: {error.subscriber}: {error.message}{where}"


FLAGS_WIDTH = 20  # at most: the flags of a row with more are cut


class NameLabel(Static):
    """A layer's name, cut from the left where the column is narrower than it."""

    def __init__(self, name: str, classes: str) -> None:
        super().__init__(classes=classes)
        self.full_name = name

    def render(self) -> str:
        return tail(self.full_name, self.size.width)


def flags_text(row: HealthRow) -> str:
    # A flag the baseline run (history) did not raise is marked "+": it came with the last change.
    return " ".join(f"+{kind}" if kind in row.new_flags else kind for kind in row.flags) or "ok"


class HealthRowView(Horizontal):
    def __init__(self, row: HealthRow, cursor: bool = False, name: Optional[str] = None,
                 flags_width: int = FLAGS_WIDTH, share: bool = True) -> None:
        super().__init__(classes="health-row" + (" -flagged" if row.flags else "") + (" -cursor" if cursor else ""))
        self.row = row
        self.shown_name = name or row.module
        self.flags_width = flags_width
        self.with_share = share  # False where no row has one (a live run has no breakdown): the name takes it

    def compose(self):  # type: ignore[no-untyped-def]
        row = self.row
        yield NameLabel(self.shown_name, classes="health-module")
        if self.with_share:
            yield Label(f"{100 * row.share:3.0f}%" if row.share is not None else "  – ", classes="health-share")
        yield Sparkline(list(row.series), classes="health-spark")
        last = "–" if row.last is None else f"{row.last:.0%}" if row.metric in SHARE_METRICS else f"{row.last:.1e}"
        yield Label(last, classes="health-last")
        flags = Label(flags_text(row), classes="health-flags")
        flags.styles.width = self.flags_width
        yield flags


class HealthPane(VerticalScroll, can_focus=True):
    BINDINGS = [
        Binding("j,down", "move(1)", "Down", show=False),
        Binding("k,up", "move(-1)", "Up", show=False),
        Binding("enter", "jump", "Jump to line", show=False),
        Binding("e", "jump_non_finite", "NaN line", show=False),
    ]

    def __init__(self, *, id: Optional[str] = None) -> None:
        super().__init__(id=id)
        self.rows: list[HealthRow] = []
        self.cursor = 0
        self.banner: Optional[str] = None
        self._banner_at: tuple[Optional[str], Optional[int]] = (None, None)

    def show_report(self, health: Optional[Health], breakdown: Optional[Breakdown],
                    comparison: Optional[RunComparison] = None) -> None:
        """``comparison``: the shown run against its baseline in the history, to mark new flags."""
        if health is None:
            self.show(None)
            return
        found = health.non_finite
        self.show(health_rows(health, breakdown, comparison), non_finite_banner(health),
                  (found.file, found.line) if found is not None else (None, None),
                  tuple(health_error_text(e) for e in health.errors))

    def show(self, rows: Optional[list[HealthRow]], banner: Optional[str] = None,
             banner_at: tuple[Optional[str], Optional[int]] = (None, None), errors: tuple[str, ...] = ()) -> None:
        """Replace the rows (None: not measured), the non-finite banner and the subscribers' errors."""
        self.rows = rows or []
        self.banner, self._banner_at = banner, banner_at
        self.cursor = min(self.cursor, max(0, len(self.rows) - 1))
        with self.app.batch_update():
            self.remove_children()
            widgets: list[Static | HealthRowView] = []
            if banner:
                widgets.append(Static(banner, classes="health-banner"))
            widgets += [Static(text, classes="health-error") for text in errors]
            if rows is None:
                widgets.append(Static("not measured", classes="health-empty"))
            # The name takes what the other columns leave: the flags column is as wide as the widest flags.
            names = without_common_prefix([row.module for row in self.rows])
            width = min(FLAGS_WIDTH, max((len(flags_text(row)) for row in self.rows), default=2))
            share = any(row.share is not None for row in self.rows)
            widgets += [HealthRowView(row, cursor=i == self.cursor, name=name, flags_width=width, share=share)
                        for i, (row, name) in enumerate(zip(self.rows, names))]
            self.mount_all(widgets)

    def _row_views(self) -> list[HealthRowView]:
        return list(self.query(HealthRowView))

    def _mark_cursor(self) -> None:
        for i, view in enumerate(self._row_views()):
            view.set_class(i == self.cursor, "-cursor")

    def action_move(self, step: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + step))
            self._mark_cursor()

    def action_jump(self) -> None:
        if self.rows:
            row = self.rows[self.cursor]
            self.post_message(JumpToSource(row.file, row.line))

    def action_jump_non_finite(self) -> None:
        file, line = self._banner_at
        if file is not None:
            self.post_message(JumpToSource(file, line))
