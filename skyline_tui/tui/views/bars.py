"""Horizontal bars made of text cells, split into coloured parts.

Each part has its own glyph as well as its own style, so the parts stay distinguishable in a monochrome
terminal (NO_COLOR) where the styles lose their colours.
"""

from __future__ import annotations

from typing import Sequence

from rich.style import Style
from rich.text import Text

BarPart = tuple[float, str, Style]  # (fraction of the whole bar, glyph, style)


def split_bar(parts: Sequence[BarPart], width: int, track: tuple[str, Style] = ("·", Style(dim=True))) -> Text:
    """``width`` cells: each part's share, rounded so the parts' boundaries never drift; the rest is track."""
    text = Text(no_wrap=True, overflow="crop")
    filled = 0
    cumulative = 0.0
    for fraction, glyph, style in parts:
        cumulative += max(0.0, fraction)
        end = min(width, round(cumulative * width))
        if end > filled:
            text.append(glyph * (end - filled), style)
            filled = end
    if filled < width:
        text.append(track[0] * (width - filled), track[1])
    return text
