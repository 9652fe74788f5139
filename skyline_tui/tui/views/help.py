"""The `?` screen: every key, grouped the way a first-time user looks for them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KeyGroups = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]

KEYS: KeyGroups = (
    ("Moving around", (
        ("tab / shift+tab", "next / previous pane"),
        ("j k ↑ ↓", "move in a pane (pgup/pgdn, g/G: page, top, bottom)"),
        ("enter", "on a row: show its line in the source pane"),
        ("mouse", "click a pane, a row or a source line"),
    )),
    ("Batch size", (
        ("+ / -", "target batch size up / down a little"),
        ("] / [", "double / halve the target batch size"),
        ("0", "back to the profiled batch size"),
        ("w", "write the target into the entry point, re-profile"),
    )),
    ("Views", (
        ("m", "run time per line ⇄ module tree (total and self)"),
        ("→ / ←", "module tree: open / close (← on a closed one: parent)"),
        ("space", "module tree: open or close (enter too, but a leaf jumps)"),
        ("l", "show / hide the output of your code"),
        ("H", "health per layer ⇄ run time (enter: its line; e: first NaN)"),
        ("e", "jump to the error's line"),
        ("h", "history: past runs (enter show · d diff vs latest · b pin as Δ baseline)"),
        ("r", "re-profile now"),
        ("s", "profile on save: on / off"),
        ("?", "this help"),
        ("q", "quit"),
    )),
)

RUN_KEYS: KeyGroups = (
    ("Moving around", (
        ("tab / shift+tab", "next / previous pane"),
        ("j k ↑ ↓", "move in a pane (pgup/pgdn, g/G: page, top, bottom)"),
        ("enter", "on a layer: show its line in the source pane"),
        ("mouse", "click a pane, a row or a source line"),
    )),
    ("Views", (
        ("l", "show / hide the output of your script"),
        ("H", "show / hide the layers (health every N steps: --health-every N)"),
        ("n / p", "metrics pane: next / previous metric (track.log)"),
        ("e", "jump to the first NaN/Inf's line, else the error's"),
        ("?", "this help"),
        ("q", "quit; while the script runs: stop it (Ctrl-C to the script) after a yes, and record the run"),
    )),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, project_root: Optional[Path] = None, keys: KeyGroups = KEYS) -> None:
        super().__init__()
        self.project_root = project_root  # what is watched and counted as project code: worth a look
        self.keys = keys  # (heading, ((key, what), ...)) groups: the profile's, or the live run's


    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for index, (heading, keys) in enumerate(self.keys):
            if index:
                table.add_row("", "")
            table.add_row(f"[u]{heading}[/u]", "")
            for key, what in keys:
                table.add_row(key, what)
        with VerticalScroll(id="help-box"):
            yield Static(table)
            if self.project_root is not None:
                yield Static(f"\nproject root: {self.project_root}", id="help-root", markup=False)

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = "skyline-tui keys"
        box.border_subtitle = "escape or ? to close"
