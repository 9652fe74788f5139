"""Number formatting shared by the panes: units always shown, widths stable so columns line up."""

from __future__ import annotations

from typing import Optional

from rich.text import Text

NA = "N/A"


def ms(value: Optional[float]) -> str:
    """A duration given in milliseconds: '0.42 ms', '18.8 ms', '1.23 s'."""
    if value is None:
        return NA
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def size(value: Optional[int]) -> str:
    """Bytes in binary units with three significant figures: '13.9 MiB', '21.3 GiB'."""
    if value is None:
        return NA
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            break
        amount /= 1024
    if unit == "B":
        return f"{int(amount)} B"
    return f"{amount:.0f} {unit}" if amount >= 100 else f"{amount:.1f} {unit}"


def rate(value: Optional[float]) -> str:
    if value is None:
        return NA
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def percent(part: Optional[float], whole: Optional[float]) -> str:
    if part is None or not whole:
        return NA
    return f"{100 * part / whole:.0f}%"


def location(file: Optional[str], line: Optional[int]) -> str:
    if file is None:
        return ""
    return f"{file}:{line}" if line is not None else file


def cell(text: Text) -> Text:
    """A table value that is cut with an ellipsis when its column is narrow, never wrapped onto more lines."""
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def without_common_prefix(names: list[str]) -> list[str]:
    """Dotted module paths less the leading parts they all share (``transformer.h.0.attn`` ... ->
    ``h.0.attn`` ...): in a narrow pane those parts are all a name would show.  Never a whole name."""
    if len(names) < 2:
        return list(names)
    parts = [name.split(".") for name in names]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return [".".join(p[common:]) for p in parts]


def tail(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` columns ("…attn.c_attn"): a layer's last parts tell it apart."""
    return text if width <= 0 or len(text) <= width else "…" + text[len(text) - width + 1:]
