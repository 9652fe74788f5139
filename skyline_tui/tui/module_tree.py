"""The module tree's shape: which modules are visible, at what depth, given the nodes that are open.

Pure and free of Textual, so the tree logic is tested without a terminal; the breakdown table only lays
out what :func:`visible_modules` returns.  A report lists modules by dotted path ("" is the model itself,
"blocks.0.attn" a grandchild); a module's parent is the longest proper prefix of its path that is itself
a module, so a tree with gaps (a path whose parent was not reported) still hangs together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from skyline_tui.report import ModuleTiming

ROOT = ""


@dataclass(frozen=True)
class VisibleModule:
    module: ModuleTiming
    depth: int  # 0 for the model itself
    parent: Optional[str]  # the parent's path; None for the model
    has_children: bool
    expanded: bool  # only meaningful where has_children


def parent_path(path: str, known: "set[str] | frozenset[str]") -> Optional[str]:
    """The nearest ancestor of ``path`` among ``known`` paths ("" for a top-level module, None for "")."""
    if path == ROOT:
        return None
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:cut])
        if candidate in known:
            return candidate
    return ROOT


def _total(module: ModuleTiming) -> float:
    return module.forward_ms + module.backward_ms


def children_by_parent(modules: Sequence[ModuleTiming]) -> dict[Optional[str], list[ModuleTiming]]:
    """Each module's children, costliest first (inclusive time; ties keep the model's order)."""
    known = {module.path for module in modules}
    if ROOT not in known:  # a report without the model's own row: its top-level modules are the roots
        known = known | {ROOT}
    children: dict[Optional[str], list[ModuleTiming]] = {}
    for module in modules:
        children.setdefault(parent_path(module.path, known), []).append(module)
    for siblings in children.values():
        siblings.sort(key=_total, reverse=True)  # sort is stable
    return children


def visible_modules(modules: Sequence[ModuleTiming], expanded: "frozenset[str] | set[str]") -> list[VisibleModule]:
    """The rows a tree with ``expanded`` nodes open shows, in order (depth first)."""
    children = children_by_parent(modules)
    has_root = any(module.path == ROOT for module in modules)
    rows: list[VisibleModule] = []

    def walk(module: ModuleTiming, depth: int, parent: Optional[str]) -> None:
        kids = children.get(module.path, []) if module.path != ROOT or has_root else []
        is_open = bool(kids) and module.path in expanded
        rows.append(VisibleModule(module, depth, parent, bool(kids), is_open))
        if is_open:
            for kid in kids:
                walk(kid, depth + 1, module.path)

    tops = children.get(None, []) if has_root else children.get(ROOT, [])
    for top in tops:
        walk(top, 0, None)
    return rows


def expanded_to_fit(modules: Sequence[ModuleTiming], max_rows: int) -> frozenset[str]:
    """The open nodes of the default tree: the model itself, then one whole level at a time while the
    visible rows still fit in ``max_rows`` (the rows below the level that fits stay collapsed)."""
    expanded: frozenset[str] = frozenset({ROOT})
    while True:
        rows = visible_modules(modules, expanded)
        closed = {row.module.path for row in rows if row.has_children and not row.expanded}
        if not closed:
            return expanded
        wider = expanded | closed
        if len(visible_modules(modules, wider)) > max_rows:
            return expanded
        expanded = wider


def toggled(expanded: frozenset[str], path: str, open_it: Optional[bool] = None) -> frozenset[str]:
    """``expanded`` with ``path`` opened (``open_it`` True), closed (False) or flipped (None)."""
    if open_it is None:
        open_it = path not in expanded
    return expanded | {path} if open_it else expanded - {path}
