"""The log pane: what the user's code printed, newest last, bounded so a chatty loop cannot grow it."""

from __future__ import annotations

from collections import deque
from typing import Iterable

from rich.text import Text
from textual import events
from textual.widgets import RichLog

MAX_LOG_LINES = 2000


class LogPane(RichLog):
    COMPONENT_CLASSES = {"log--stderr"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LOG_LINES, wrap=False, markup=False, highlight=False, auto_scroll=True)
        self.border_title = "Output of your code"
        # RichLog queues writes without bound while it has no size (hidden); we keep the newest lines only.
        self._hidden_lines: deque[tuple[str, str]] = deque(maxlen=MAX_LOG_LINES)

    @property
    def line_count(self) -> int:
        return len(self.lines) + len(self._hidden_lines)

    def append(self, chunks: Iterable[tuple[str, str]]) -> None:
        """(stream, text) pairs in arrival order; a text may hold several lines."""
        for stream, text in chunks:
            for line in text.rstrip("\n").split("\n"):
                self._hidden_lines.append((stream, line))
        if self.display and self.size.width:
            self._flush()

    def on_resize(self, event: events.Resize) -> None:
        self._flush()

    def on_show(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if not self._hidden_lines or not self.size.width:
            return
        stderr = self.get_component_rich_style("log--stderr", partial=True)
        for stream, line in self._hidden_lines:
            self.write(Text(line, stderr if stream == "stderr" else ""))
        self._hidden_lines.clear()
