"""How a change against the baseline run reads in a pane: ``▲ 12 % faster`` coloured only outside the
noise band (dim within it, and within a drift between processes not known yet), and the breakdown's Δ cell
(a line's or a module's).  The judging is done before (skyline_tui.comparison)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from skyline_tui.comparison.changes import Change
from skyline_tui.comparison.diff import LineChange, ModuleChange

BETTER = {"faster", "less"}  # the direction a user wants: more throughput, less memory


def change_text(change: Change, better: Style, worse: Style, muted: Style, against: str) -> Text:
    after = ""
    if change.within_noise:
        style = muted
        note = " (within noise)"
    elif change.within_unknown_drift:
        style, note = muted, ""
        after = " (within unknown drift)"
    else:
        style = better if change.verdict in BETTER else worse
        note = ""
    return Text.assemble((change.text, style), (f"{note} vs {against}{after}", muted))


def delta_cell(change: LineChange | ModuleChange | None, slower: Style, faster: Style, new: Style,
               muted: Style) -> Text:
    if change is None:
        return Text("")
    if change.verdict == "new":
        return Text("new", new, justify="right")
    style = slower if change.verdict == "slower" else faster if change.verdict == "faster" else muted
    return Text(f"{change.delta_ms:+.2f}", style, justify="right")
