"""The module tree's shape, without the app: which rows show, at what depth, and what opens by default."""

from __future__ import annotations

import pytest

from skyline_tui.report import ModuleTiming
from skyline_tui.tui.views.breakdown import tree_label
from skyline_tui.tui.module_tree import expanded_to_fit, parent_path, toggled, visible_modules
from skyline_tui.tui.table_rows import ROW_MODULE, breakdown_rows
from app_support import load_report

TRANSFORMER = load_report("transformer_cuda")


def module(path: str, total_ms: float, self_ms: float = 0.0) -> ModuleTiming:
    return ModuleTiming(path=path, type="M", forward_ms=total_ms, backward_ms=0.0, self_forward_ms=self_ms,
                        self_backward_ms=0.0)


# model (10) ── a (3) ── a.x (1), a.y (2)
#            └─ b (6)
TREE = [module("", 10), module("a", 3), module("a.x", 1, 1), module("a.y", 2, 2), module("b", 6, 6)]


def shown(expanded: set[str]) -> list[tuple[str, int]]:
    return [(row.module.path, row.depth) for row in visible_modules(TREE, frozenset(expanded))]


def test_only_open_nodes_show_their_children_costliest_first():
    assert shown(set()) == [("", 0)]
    assert shown({""}) == [("", 0), ("b", 1), ("a", 1)]  # b (6 ms) above a (3 ms)
    assert shown({"", "a"}) == [("", 0), ("b", 1), ("a", 1), ("a.y", 2), ("a.x", 2)]
    assert shown({"a"}) == [("", 0)]  # an open node under a closed one stays hidden


def test_nodes_know_their_parent_and_whether_they_open():
    rows = {row.module.path: row for row in visible_modules(TREE, frozenset({"", "a"}))}
    assert (rows["a"].parent, rows["a"].has_children, rows["a"].expanded) == ("", True, True)
    assert (rows["a.x"].parent, rows["a.x"].has_children) == ("a", False)
    assert rows[""].parent is None


def test_a_path_whose_parent_is_missing_hangs_from_its_nearest_ancestor():
    assert parent_path("a.b.c", {"", "a"}) == "a"
    assert parent_path("a", {""}) == ""
    assert parent_path("", {""}) is None


def test_the_default_opens_whole_levels_while_they_fit():
    assert expanded_to_fit(TREE, 1) == frozenset({""})  # the model is always open
    assert expanded_to_fit(TREE, 4) == frozenset({""})  # the next level makes 5 rows
    assert expanded_to_fit(TREE, 5) == frozenset({"", "a"})
    assert len(visible_modules(TREE, expanded_to_fit(TREE, 100))) == len(TREE)


def test_toggling_opens_closes_and_flips():
    assert toggled(frozenset(), "a") == {"a"}
    assert toggled(frozenset({"a"}), "a") == frozenset()
    assert toggled(frozenset({"a"}), "a", open_it=True) == {"a"}
    assert toggled(frozenset(), "a", open_it=False) == frozenset()


def test_module_rows_carry_inclusive_and_self_time_from_the_report():
    # transformer_cuda.json: blocks.0 is 18.9 + 36.6 ms with its children, 2.1 + 3.9 ms of its own.
    rows = breakdown_rows(TRANSFORMER.breakdown, ROW_MODULE, frozenset({"", "blocks"}))
    block = next(row for row in rows if row.key == "module:blocks.0")
    assert block.total_ms == pytest.approx(55.5) and block.self_ms == pytest.approx(6.0)
    assert (block.depth, block.label, block.detail) == (2, "0", "Block")
    assert block.has_children and not block.expanded
    assert [row.key for row in rows][:3] == ["module:", "module:blocks", "module:blocks.1"]  # 55.6 ms before 55.5
    assert [row.kind for row in rows][-2:] == ["optimizer", "other"]  # after the tree, not mixed into it


def test_tree_labels_are_indented_and_marked():
    rows = {row.key: row for row in breakdown_rows(TRANSFORMER.breakdown, ROW_MODULE, frozenset({"", "blocks"}))}
    assert tree_label(rows["module:"]) == "▾ TransformerLM"
    assert tree_label(rows["module:blocks.0"]) == "    ▸ 0"
    assert tree_label(rows["module:head"]) == "    head"
