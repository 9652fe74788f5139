"""The error pane: what went wrong in the user's code, where, and the user's frames."""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from skyline_tui.report import ErrorInfo
from skyline_tui.tui.views import format as fmt

ERROR_TITLES = {
    "file": "Cannot read the entry point",
    "syntax": "Syntax error",
    "entry_point": "Entry point problem",
    "user_code": "Exception in your code",
    "oom": "Out of memory",
    "timeout": "Timed out",
    "crash": "Crashed",
    "exit": "Your code exited",
    "cancelled": "Cancelled",
    "internal": "Internal error in skyline-tui",
}


class ErrorPane(VerticalScroll, can_focus=True):
    """Hidden while there is no error.  ``kept_previous`` says the other panes still show an older run."""

    def compose(self) -> ComposeResult:
        yield Static(id="error-text")

    def show(self, error: Optional[ErrorInfo], kept_previous: bool) -> None:
        self.display = error is not None
        if error is None:
            return
        self.border_title = f"✗ {ERROR_TITLES.get(error.kind, error.kind)}"
        text = Text()
        where = fmt.location(error.file, error.line)
        if where:
            text.append(where, "bold underline")
            if error.function:
                text.append(f" in {error.function}", "dim")
            text.append("\n")
        text.append(error.message, "bold")
        if kept_previous:
            text.append("\nThe other panes keep the last good report.", "dim italic")
        if error.traceback.strip() and error.traceback.strip() != error.message.strip():
            text.append("\n\n" + error.traceback.rstrip(), "dim")
        self.query_one("#error-text", Static).update(text)
