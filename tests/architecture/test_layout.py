"""The package's shape: no import circle anywhere in skyline_tui/ (imports inside functions count), no
module over ~400 lines, every module the worker preloads really imports, the UI's top level never imports a
view (but the app's own modules), and the README's layout names every module."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

from ..conftest import REPO, cli_env

PACKAGE = REPO / "skyline_tui"
MAX_LINES = 400
# Over the limit today and being reshaped on another branch (app state in one home, ProfileOnSave as an
# object): allowed its current size so it cannot grow; drop the entry once it is split.
GRANDFATHERED: dict[str, int] = {}  # none left: every module is under the limit


def module_name(path: Path, top: Path) -> str:
    parts = path.relative_to(top).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every skyline_tui module ``path`` imports, at any depth of its body (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its body)."""
    modules = {module_name(path, package.parent): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # `import a.b.c` also runs a/__init__ and a/b/__init__: the parents are edges too, except the
        # module's own packages (which are running already when it is imported).
        targets: set[str] = set()
        for imported in imports_of(path, name):
            parts = imported.split(".")
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {t for t in targets if t in modules and t != name and t not in own_packages}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_there_is_no_import_circle_in_the_package():
    graph = import_graph(PACKAGE)
    assert "skyline_tui.profiler.run" in graph["skyline_tui.worker.child"]  # the graph sees function-level imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "skyline_tui"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from skyline_tui.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def late():\n    from .. import a\n")
    assert find_cycle(import_graph(pkg)) == ["skyline_tui.a", "skyline_tui.sub.b", "skyline_tui.a"]
    (pkg / "sub" / "b.py").write_text("def late():\n    import json\n")
    assert find_cycle(import_graph(pkg)) is None


def test_no_module_is_over_about_400_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines()))
            > GRANDFATHERED.get(p.relative_to(REPO).as_posix(), MAX_LINES)}
    assert not long, f"split these along a seam: {long}"


def test_every_module_the_worker_preloads_imports():
    from skyline_tui.worker.child import PRELOAD_MODULES

    assert "skyline_tui.profiler.run" in PRELOAD_MODULES
    for name in PRELOAD_MODULES:
        importlib.import_module(name)  # a rename that the list did not follow raises here


def test_the_worker_preload_fails_loudly_on_a_missing_module():
    """The list is used as is: a name that does not import stops the worker's start instead of being skipped."""
    probe = ("import skyline_tui.worker.child as c\n"
             "c.PRELOAD_MODULES = c.PRELOAD_MODULES + ('skyline_tui.profiler.no_such_module',)\n"
             "c.preload()\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=cli_env(), capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, result.stderr[-2000:]


# The app's own modules: they mount the views (tui/__init__.py says what sits at the top and what in views/).
MOUNTS_VIEWS = {"skyline_tui.tui.app", "skyline_tui.tui.history_actions", "skyline_tui.tui.run_app"}


def test_of_the_ui_s_top_level_only_the_app_imports_the_views():
    graph = import_graph(PACKAGE)
    views = "skyline_tui.tui.views"
    top = {name for name in graph if name.startswith("skyline_tui.tui.") and name.count(".") == 2} - {views}
    assert "skyline_tui.tui.state" in top
    importing_views = {name for name in top - MOUNTS_VIEWS
                       if any(t == views or t.startswith(views + ".") for t in graph[name])}
    assert not importing_views, f"these hold or compute data, and must not import a view: {sorted(importing_views)}"


def readme_layout() -> list[str]:
    """The README's "Layout of skyline_tui/" list, one string per bullet (continuation lines joined)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = text[text.index("Layout of `skyline_tui/`"):].splitlines()
    bullets: list[str] = []
    for line in lines[1:]:
        if line.startswith("- "):
            bullets.append(line[2:])
        elif line.startswith("  ") and bullets:
            bullets[-1] += " " + line.strip()
        elif bullets and not line.strip():
            break
    return bullets


def named_paths(bullet: str) -> list[set[str]]:
    """What each `token` of a bullet may name (``a/{b,c}.py`` is two tokens): the path as written, or under
    the package the bullet opens with (a first token ending in "/")."""
    tokens = re.findall(r"`([^`]+)`", bullet)
    prefix = tokens[0] if tokens and tokens[0].endswith("/") else ""
    candidates: list[set[str]] = []
    for token in tokens:
        braces = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", token)
        for path in [braces[1] + part.strip() + braces[3] for part in braces[2].split(",")] if braces else [token]:
            candidates.append({path, prefix + path})
    return candidates


def test_the_readme_layout_names_every_module_and_no_missing_one():
    modules = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}
    tokens = [paths for bullet in readme_layout() for paths in named_paths(bullet)]
    named = set().union(*tokens)
    named |= {f"{path}__init__.py" for path in named if path.endswith("/")}  # a package is named by its folder
    missing = sorted(modules - named)
    assert not missing, f"the README's layout of skyline_tui/ does not name: {missing}"
    stale = sorted(min(paths) for paths in tokens
                   if any(path.endswith(".py") for path in paths) and not paths & modules)
    assert not stale, f"the README's layout names modules that are not in skyline_tui/: {stale}"
