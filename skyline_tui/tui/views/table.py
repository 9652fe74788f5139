"""A row table whose rows point at source lines: the base of the breakdown and memory tables."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from skyline_tui.tui.views.messages import JumpToSource, PreviewSource


class SourceRowTable(DataTable[Any]):  # cells are rich Text, bars and plain strings
    """Rows keyed by a stable key; each row may point at ``file:line``.

    ``enter`` (or a click on the highlighted row) posts :class:`JumpToSource`; moving the cursor posts
    :class:`PreviewSource`.  :meth:`mark_location` emphasises the rows of one source line, which is how a
    cursor in the source pane shows "its" rows here.
    """

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {"row--marked"}
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]
    LABEL_COLUMN = "label"

    def __init__(self, *, id: Optional[str] = None, classes: Optional[str] = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False, cell_padding=1)
        self._locations: dict[str, tuple[Optional[str], Optional[int]]] = {}
        self._labels: dict[str, Text] = {}
        self._marked: list[str] = []

    def set_rows(self, rows: Sequence[tuple[str, Optional[str], Optional[int], Sequence[object]]]) -> None:
        """Replace all rows: (key, file, line, cells); the first cell is the label.  Keeps the cursor's key."""
        keep = self._key_at_cursor()
        with self.app.batch_update():
            self.clear()
            self._locations.clear()
            self._labels.clear()
            self._marked = []
            for key, file, line, cells in rows:
                label = cells[0] if isinstance(cells[0], Text) else Text(str(cells[0]))
                self._labels[key] = label
                self._locations[key] = (file, line)
                self.add_row(label, *cells[1:], key=key)
            if keep in self._locations:
                self.move_cursor(row=self.get_row_index(keep), animate=False)

    def mark_location(self, file: Optional[str], line: Optional[int]) -> list[str]:
        """Emphasise the rows pointing at ``file:line``; returns their keys."""
        keys = [key for key, where in self._locations.items() if file is not None and where == (file, line)]
        if keys == self._marked:
            return keys
        marked_style = self.get_component_rich_style("row--marked", partial=True)
        for key in self._marked:
            if key in self._labels:
                self.update_cell(key, self.LABEL_COLUMN, self._labels[key])
        for key in keys:
            self.update_cell(key, self.LABEL_COLUMN, Text("▶", marked_style) + self._labels[key])
        self._marked = keys
        return keys

    def location_at_cursor(self) -> tuple[Optional[str], Optional[int]]:
        return self._locations.get(self._key_at_cursor() or "", (None, None))

    def _key_at_cursor(self) -> Optional[str]:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # the cursor is past the rows after a clear
            return None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        # The cursor now, not the event's row: a rebuild of the rows may have queued stale events.
        file, line = self.location_at_cursor()
        self.post_message(PreviewSource(file, line))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        file, line = self._locations.get(event.row_key.value or "", (None, None))
        self.post_message(JumpToSource(file, line))
