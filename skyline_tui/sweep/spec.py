"""The sweep file: YAML in Skeletor's shape, checked against the entry point before any trial runs.

Each top-level key is a knob; its value is a constant or ``{grid_search: [v1, v2, ...]}``, and the trials
are the cross product of the grids, in file order.  A key must be a built-in knob or a keyword parameter
of some provider.  The entry point is read with ``ast``, never imported: the parent process stays
torch-free, and a bad spec is refused in a fraction of a second instead of after a torch import.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml  # type: ignore[import-untyped]

from skyline_tui.config import PRECISIONS

GRID = "grid_search"
BUILTIN_KNOBS = ("batch_size", "precision", "channels_last", "compile")
PROVIDER_SUFFIXES = ("model_provider", "input_provider", "iteration_provider")
PROVIDER_PREFIXES = ("skyline", "deepview")


class SpecError(ValueError):
    """A sweep file that cannot run; the message is one line naming the file, line and key."""


@dataclass(frozen=True)
class SweepSpec:
    path: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]  # (knob, its values) in file order; a constant has one

    @property
    def knobs(self) -> tuple[str, ...]:
        return tuple(name for name, _values in self.axes)

    def trials(self) -> list[dict[str, Any]]:
        """Every combination, each a dict holding every knob (constants included)."""
        names = self.knobs
        grids = (values for _name, values in self.axes)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grids)]


def load_spec(spec_path: str, entry_path: str) -> SweepSpec:
    """Read and check the sweep file against the entry point's providers; raises SpecError."""
    try:
        text = Path(spec_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {spec_path}: {getattr(exc, 'strerror', None) or exc}") from None
    accepted = provider_parameters(entry_path)
    return parse_spec(text, spec_path, accepted)


def parse_spec(text: str, where: str, accepted: Optional[set[str]],
               builtins: tuple[str, ...] = BUILTIN_KNOBS) -> SweepSpec:
    """``accepted``: the provider keyword parameters, or None when a provider takes ``**kwargs``.
    ``builtins``: the knobs always accepted and checked here (a training script's sweep has none: its
    ``batch_size`` is its own option)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at_line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{where}{at_line}: malformed YAML: {problem}") from None
    if root is None or not isinstance(root, yaml.MappingNode) or not isinstance(data, dict) or not data:
        raise SpecError(f"{where}: a sweep file is a mapping of knobs to values "
                        f"(e.g. 'batch_size: {{{GRID}: [16, 32]}}')")
    lines: dict[str, int] = {}
    for key_node, _value_node in root.value:
        name = key_node.value
        line = key_node.start_mark.line + 1
        if name in lines:
            raise SpecError(f"{where}, line {line}: knob {name!r} appears twice (first on line {lines[name]})")
        lines[name] = line
    axes = []
    for key, value in data.items():
        line = lines.get(str(key), 0)
        at = f"{where}, line {line}"
        if not isinstance(key, str):
            raise SpecError(f"{at}: knob names are strings, not {key!r}")
        if key not in builtins and accepted is not None and key not in accepted:
            known = ", ".join(sorted(set(builtins) | accepted))
            raise SpecError(f"{at}: unknown knob {key!r}: not a built-in knob and no provider takes it "
                            f"(knobs here: {known})")
        values = _values(key, value, at)
        for item in values:
            if key in builtins:
                _check_builtin(key, item, at)
        axes.append((key, values))
    return SweepSpec(path=where, axes=tuple(axes))


def _values(key: str, value: Any, at: str) -> tuple[Any, ...]:
    if not isinstance(value, dict):
        return (value,)
    if set(value) != {GRID}:
        raise SpecError(f"{at}: {key!r} maps to {sorted(map(str, value))}; a knob's value is a constant or "
                        f"{{{GRID}: [...]}}")
    grid = value[GRID]
    if not isinstance(grid, list):
        raise SpecError(f"{at}: {key!r}: {GRID} takes a list of values, not {type(grid).__name__}")
    if not grid:
        raise SpecError(f"{at}: {key!r}: empty {GRID}: a grid needs at least one value")
    return tuple(grid)


def _check_builtin(key: str, value: Any, at: str) -> None:
    if key == "batch_size" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise SpecError(f"{at}: batch_size must be a positive integer, not {value!r}")
    if key == "precision" and value not in PRECISIONS:
        raise SpecError(f"{at}: precision must be one of {', '.join(PRECISIONS)}, not {value!r}")
    if key in ("channels_last", "compile") and not isinstance(value, bool):
        raise SpecError(f"{at}: {key} must be true or false, not {value!r}")


def provider_parameters(entry_path: str) -> Optional[set[str]]:
    """The keyword parameters the entry point's providers declare (the contract's own excluded), read
    with ``ast``.  None when a provider takes ``**kwargs`` (then any knob may be meant for it)."""
    try:
        source = Path(entry_path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the entry point {entry_path}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    try:
        tree = ast.parse(source, filename=entry_path)
    except SyntaxError as exc:
        raise SpecError(f"{entry_path}, line {exc.lineno}: {exc.msg}") from None
    names = {f"{prefix}_{suffix}" for prefix in PROVIDER_PREFIXES for suffix in PROVIDER_SUFFIXES}
    accepted: set[str] = set()
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name not in names:
            continue
        if node.args.kwarg is not None:
            return None
        params = [a.arg for a in node.args.args] + [a.arg for a in node.args.kwonlyargs]
        if node.name.endswith("iteration_provider") and node.args.args:
            params = params[1:]  # the model
        accepted.update(p for p in params if p != "batch_size")
    return accepted
