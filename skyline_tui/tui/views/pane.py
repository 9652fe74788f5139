"""What every pane shares: a title, and whether what it shows comes from the newest run."""

from __future__ import annotations

from typing import Optional

from textual.widget import Widget

from skyline_tui.tui.state import FIT_FROM_PREVIOUS_RUN, PAST_RUN


def show_freshness(pane: Widget, title: str, note: Optional[str]) -> None:
    """``note`` None: the data is from the newest run; otherwise a short note such as 'previous run'.

    Stale panes get the ``-stale`` class, so the .tcss can dim them while a new run streams in; a pane
    whose own numbers are fresh and only its fitted rows older ('fit from previous run') is not dimmed, nor
    a past run from the history ('past run #3'): the user asked to read it.
    """
    pane.border_title = title if note is None else f"{title} · {note}"
    stale = note is not None and note != FIT_FROM_PREVIOUS_RUN and not note.startswith(PAST_RUN)
    pane.set_class(stale, "-stale")
