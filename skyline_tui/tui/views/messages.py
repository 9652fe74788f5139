"""Messages the panes post upwards; the app decides what the source pane does with them."""

from __future__ import annotations

from typing import Optional

from textual.message import Message


class SourceLocationMessage(Message):
    def __init__(self, file: Optional[str], line: Optional[int]) -> None:
        super().__init__()
        self.file = file
        self.line = line


class JumpToSource(SourceLocationMessage):
    """A row was chosen (enter or click): open its file and put the cursor on its line."""


class PreviewSource(SourceLocationMessage):
    """The cursor is on a row: mark its line in the source pane if that file is open."""


class ToggleModule(Message):
    """Open (``expand`` True), close (False) or flip (None) a node of the module tree."""

    def __init__(self, path: str, expand: Optional[bool] = None) -> None:
        super().__init__()
        self.path = path
        self.expand = expand


class TreeRoomChanged(Message):
    """The breakdown pane changed height: the module tree's default levels may fit differently now."""
