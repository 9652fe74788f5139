"""Table rows for the breakdown and memory panes, built from a report by pure functions.

Kept apart from the widgets (and free of Textual) so what a row says is tested without a terminal and the
widgets only lay the rows out.  Shares are fractions of the profiled iteration, so the bars of all rows
(optimizer and "other" included) add up to one full bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from skyline_tui.report import Breakdown, MemoryBreakdown
from skyline_tui.tui.module_tree import visible_modules

ROW_LINE = "line"
ROW_MODULE = "module"
ROW_OPTIMIZER = "optimizer"
ROW_OTHER = "other"


@dataclass(frozen=True)
class BreakdownRow:
    key: str  # stable across reports, so the cursor can stay on "the same" row after a re-profile
    kind: str  # ROW_LINE | ROW_MODULE | ROW_OPTIMIZER | ROW_OTHER
    label: str
    detail: str  # the source code of a line, the type of a module
    forward_ms: float
    backward_ms: float
    forward_share: float  # of the profiled iteration, 0..1
    backward_share: float
    file: Optional[str] = None
    line: Optional[int] = None
    # Time that is neither a forward nor a backward pass (the optimizer step, unattributed work).
    other_ms: float = 0.0
    other_share: float = 0.0
    # Module rows only: forward/backward are inclusive (children counted), ``self_ms`` the module's own.
    self_ms: Optional[float] = None
    depth: int = 0
    path: Optional[str] = None  # the module's dotted path
    parent: Optional[str] = None  # the parent module's path (None at the top)
    has_children: bool = False
    expanded: bool = False

    @property
    def total_ms(self) -> float:
        return self.forward_ms + self.backward_ms + self.other_ms


@dataclass(frozen=True)
class MemoryRow:
    key: str
    label: str  # the module path, or the location when no module owns the bytes
    bytes: int
    share: float  # of the peak, 0..1
    file: Optional[str] = None
    line: Optional[int] = None


def breakdown_rows(breakdown: Breakdown, by: str = ROW_LINE,
                   expanded: frozenset[str] = frozenset()) -> list[BreakdownRow]:
    """Per-line rows most expensive first (``by="line"``), or the module tree with ``expanded`` nodes open
    (``by="module"``, depth first, siblings costliest first); then the optimizer and other rows."""
    total = breakdown.profiled_iteration_ms or 1.0
    rows: list[BreakdownRow] = []

    def timed(key: str, kind: str, label: str, detail: str, forward_ms: float, backward_ms: float,
              file: Optional[str], line: Optional[int]) -> BreakdownRow:
        return BreakdownRow(key=key, kind=kind, label=label, detail=detail, forward_ms=forward_ms,
                            backward_ms=backward_ms, forward_share=forward_ms / total,
                            backward_share=backward_ms / total, file=file, line=line)

    if by != ROW_MODULE:
        for timing in breakdown.lines:
            rows.append(timed(f"line:{timing.file}:{timing.line}", ROW_LINE, f"{timing.file}:{timing.line}",
                              timing.code.strip(), timing.forward_ms, timing.backward_ms, timing.file, timing.line))
    specials = [
        BreakdownRow(kind, kind, label, detail, 0.0, 0.0, 0.0, 0.0, other_ms=value, other_share=value / total)
        for kind, label, detail, value in (
            (ROW_OPTIMIZER, "optimizer step", "optimizer.step()", breakdown.optimizer_ms),
            (ROW_OTHER, "other", "not attributed to a project line", breakdown.other_ms),
        )
    ]
    if by == ROW_MODULE:
        # A tree keeps its shape (a parent above its children), so the rows are not re-sorted; the
        # optimizer and other rows, not modules, come after it.
        return module_rows(breakdown, expanded) + sorted(specials, key=lambda row: row.total_ms, reverse=True)
    rows.extend(specials)
    rows.sort(key=lambda row: row.total_ms, reverse=True)
    return rows


def module_rows(breakdown: Breakdown, expanded: frozenset[str]) -> list[BreakdownRow]:
    """The visible nodes of the module tree: bars and times inclusive, ``self_ms`` the module's own."""
    total = breakdown.profiled_iteration_ms or 1.0
    rows = []
    for node in visible_modules(breakdown.modules, expanded):
        module = node.module
        name = module.path.rsplit(".", 1)[-1] if module.path else module.type
        rows.append(BreakdownRow(
            key=f"module:{module.path}", kind=ROW_MODULE, label=name, detail=module.type,
            forward_ms=module.forward_ms, backward_ms=module.backward_ms,
            forward_share=module.forward_ms / total, backward_share=module.backward_ms / total,
            file=module.file, line=module.line, self_ms=module.self_forward_ms + module.self_backward_ms,
            depth=node.depth, path=module.path, parent=node.parent, has_children=node.has_children,
            expanded=node.expanded,
        ))
    return rows


def activation_rows(memory: MemoryBreakdown, limit: int = 20) -> list[MemoryRow]:
    """The largest activation entries (saved-for-backward tensors), largest first."""
    peak = memory.peak_bytes or 1
    entries = sorted((e for e in memory.entries if e.kind == "activations"), key=lambda e: e.bytes, reverse=True)
    rows = []
    for index, entry in enumerate(entries[:limit]):
        where = f"{entry.file}:{entry.line}" if entry.file else ""
        rows.append(
            MemoryRow(
                key=f"act:{index}:{entry.module}:{where}",
                label=entry.module or where or "(unknown)",
                bytes=entry.bytes,
                share=entry.bytes / peak,
                file=entry.file,
                line=entry.line,
            )
        )
    return rows
