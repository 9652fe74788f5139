"""The project root: found from the entry point (nearest folder up holding a project marker, not above
home), overridden by --root, the same in the profiler child and the app, and cheap to watch when it is big."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skyline_tui.profiler.entry import resolve_paths
from skyline_tui.project import display_path, find_project_root
from skyline_tui.tui.watch import ProjectWatcher, project_folders, project_sources

from ..conftest import QUICK_FLAGS, TINY_ENTRY, run_cli

NO_EXTRAS = ["--no-memory", "--no-predictions", "--no-health"]  # the breakdown names the project's files


def make_project(top: Path, marker: str | None) -> Path:
    """top/[marker], top/scripts/entry.py and top/models/net.py; returns the entry point."""
    (top / "scripts").mkdir(parents=True)
    (top / "models").mkdir()
    if marker == ".git":
        (top / ".git").mkdir()
    elif marker is not None:
        (top / marker).write_text("")
    (top / "models" / "__init__.py").write_text("")
    (top / "models" / "net.py").write_text(
        "import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(8, 2)\n\n    def forward(self, x):\n        return self.fc(x)\n\n\n"
        "def make():\n    return Net()\n")
    entry = top / "scripts" / "entry.py"
    # The models package sits beside scripts/: the entry puts the project's top on sys.path itself.
    entry.write_text(TINY_ENTRY.replace(
        "import torch.nn as nn\n",
        "import torch.nn as nn\nimport os, sys\nsys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))\n"
        "from models.net import make\n").replace(
        "return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))", "return make()"))
    return entry


@pytest.mark.parametrize("marker", [".git", "pyproject.toml", "setup.py", "setup.cfg"])
def test_the_root_is_the_nearest_folder_up_holding_a_project_marker(tmp_path, marker):
    entry = make_project(tmp_path / "proj", marker)
    assert find_project_root(entry, home=tmp_path) == tmp_path / "proj"
    assert resolve_paths(entry, None) == (entry, tmp_path / "proj")


def test_without_a_marker_the_root_is_the_entry_folder(tmp_path):
    entry = make_project(tmp_path / "proj", None)
    assert find_project_root(entry, home=tmp_path) == tmp_path / "proj" / "scripts"


def test_the_search_never_goes_above_home(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")  # above "home": not the user's project
    home = tmp_path / "home" / "u"
    entry = make_project(home / "proj", None)
    assert find_project_root(entry, home=home) == home / "proj" / "scripts"
    (home / ".git").mkdir()  # home itself is the top of the search, not above it
    assert find_project_root(entry, home=home) == home


def test_an_explicit_root_wins(tmp_path):
    entry = make_project(tmp_path / "proj", ".git")
    assert resolve_paths(entry, tmp_path / "proj" / "scripts") == (entry, tmp_path / "proj" / "scripts")


def test_display_path_is_relative_to_the_root_else_absolute(tmp_path):
    assert display_path(tmp_path / "a" / "b.py", tmp_path) == "a/b.py"
    assert display_path("/elsewhere/x.py", tmp_path) == "/elsewhere/x.py"


@pytest.mark.parametrize("root_flag", [False, True])
def test_model_lines_are_charged_to_their_file_relative_to_the_root(tmp_path, root_flag):
    """scripts/entry.py beside models/net.py: by default (marker) or with --root, the model's lines are
    project code, named relative to the root; with the entry's folder as root they would land in "other"."""
    entry = make_project(tmp_path / "proj", None if root_flag else "pyproject.toml")
    extra = ["--root", str(tmp_path / "proj")] if root_flag else []
    result = run_cli(str(entry), "--json", "-", *extra, *QUICK_FLAGS, *NO_EXTRAS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["project_root"] == str(tmp_path / "proj")
    files = {row["file"] for row in report["breakdown"]["lines"]}
    assert "models/net.py" in files and "scripts/entry.py" in files, files


def test_the_app_and_the_profiler_resolve_the_same_root(tmp_path):
    from app_support import make_app

    entry = make_project(tmp_path / "proj", "setup.cfg")
    app, _ = make_app(entry=entry, root=None)
    assert app.project_root == resolve_paths(entry, None)[1] == tmp_path / "proj"


async def test_the_app_shows_the_root_in_its_help_screen(tmp_path):
    from app_support import make_app

    entry = make_project(tmp_path / "proj", "setup.cfg")
    app, _ = make_app(entry=entry, root=None, profile_on_start=False)
    async with app.run_test(size=(100, 40)) as pilot:
        assert app.query_one("SourceView").file == "scripts/entry.py"
        await pilot.press("question_mark")
        await pilot.pause()
        assert f"project root: {tmp_path / 'proj'}" in str(app.screen.query_one("#help-root").render())


def test_a_big_root_walks_and_watches_only_project_folders(tmp_path):
    root = tmp_path / "proj"
    entry = make_project(root, ".git")
    big = {"env": 200, "data": 300, "node_modules": 50, ".skyline-tui": 5, ".git/objects": 50}
    for folder, count in big.items():
        for i in range(count):
            (root / folder / f"d{i}").mkdir(parents=True)
            (root / folder / f"d{i}" / "m.py").write_text("")
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # a virtualenv not named venv
    (root / "datasets").mkdir()
    (root / "datasets" / "__init__.py").write_text("")  # a data *package*: the model may import it
    (root / "datasets" / "loader.py").write_text("")

    expected = {root, root / "scripts", root / "models", root / "datasets"}
    assert {Path(f) for f in project_folders(str(root), str(root))} == expected
    assert set(project_sources(str(root))) == {str(p) for p in (
        entry, root / "models" / "__init__.py", root / "models" / "net.py",
        root / "datasets" / "__init__.py", root / "datasets" / "loader.py")}
    watcher = ProjectWatcher(str(root), on_change=lambda paths: None)
    watcher.start()
    try:
        assert {Path(f) for f in watcher._watches} == expected  # 4 inotify watches, not 600
    finally:
        watcher.stop()


def test_the_app_and_baseline_lookups_use_the_enclosing_projects_store(tmp_path, monkeypatch):
    """--json records into <project root>/.skyline-tui/history.db; the app and --baseline RUN_ID must use that
    same store for an entry in a subfolder, not one beside the entry."""
    from skyline_tui.headless import history_to_read

    monkeypatch.delenv("SKYLINE_TUI_HISTORY", raising=False)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "scripts").mkdir()
    entry = tmp_path / "scripts" / "entry.py"
    entry.write_text("")
    expected = tmp_path.resolve() / ".skyline-tui" / "history.db"
    # One function answers for the CLI's --baseline and the API's baseline= (skyline_tui.headless).
    assert history_to_read(str(entry), None) == expected
