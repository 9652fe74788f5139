"""The log pane: what the user's code printed, newest last, bounded so a chatty loop cannot grow it."""

from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.widgets import RichLog

MAX_LOG_LINES = 2000


class LogPane(RichLog):
    COMPONENT_CLASSES = {"log--stderr"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LOG_LINES, wrap=False, markup=False, highlight=False, auto_scroll=True)
        self.border_title = "Output of your code"

    def append(self, chunks: Iterable[tuple[str, str]]) -> None:
        """(stream, text) pairs in arrival order; text may hold several lines or a partial one."""
        stderr = self.get_component_rich_style("log--stderr", partial=True)
        for stream, text in chunks:
            for line in text.rstrip("\n").split("\n"):
                self.write(Text(line, stderr if stream == "stderr" else ""))
