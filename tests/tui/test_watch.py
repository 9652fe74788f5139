"""The project watcher: which paths count, the debounce (on a made-up clock), and the real watchdog
observer on real file writes.  Nothing here asserts on time: the real-watcher tests wait until the
watcher has seen a sentinel event written after the burst and has gone quiet, then count calls."""

from __future__ import annotations

import os
import threading

import pytest

from skyline_tui.tui.watch import ProjectWatcher, SaveDebouncer, file_signature, is_project_source

from ..watch_support import settle

ROOT = "/home/u/project"


@pytest.mark.parametrize("path, watched", [
    ("entry.py", True),
    ("model.py", True),
    ("pkg/sub/layers.py", True),
    (f"{ROOT}/pkg/layers.py", True),
    ("README.md", False),
    ("data.csv", False),
    (".git/hooks/pre-commit.py", False),
    ("__pycache__/entry.cpython-311.py", False),
    ("pkg/__pycache__/layers.py", False),
    (".venv/lib/python3.11/site-packages/torch/nn/modules/linear.py", False),
    ("venv/lib/python3.11/site-packages/numpy/core.py", False),
    ("env/lib/python3.11/site-packages/numpy/core.py", False),  # a venv by any name: site-packages
    (".entry.py.swp", False),
    (".entry.py.swx", False),
    ("entry.py~", False),
    ("4913", False),  # vim's "can I write here?" probe
    (".#entry.py", False),  # emacs lock file
    ("entry.py.tmp", False),
    ("/elsewhere/entry.py", False),
    ("../entry.py", False),
    (ROOT, False),
])
def test_only_project_python_files_count(path, watched):
    assert is_project_source(path, ROOT) is watched


def test_a_burst_of_fifty_saves_in_two_seconds_settles_once():
    debouncer = SaveDebouncer(quiet_s=0.15)
    taken = []
    for i in range(50):
        now = i * 0.04
        debouncer.note(["/p/entry.py"], now)
        burst = debouncer.take_if_due(now + 0.01)
        if burst is not None:
            taken.append(burst)
    assert taken == []
    assert debouncer.take_if_due(1.96 + 0.149) is None
    assert debouncer.take_if_due(1.96 + 0.15) == (["/p/entry.py"], False)
    assert debouncer.take_if_due(10.0) is None
    assert not debouncer.pending


def test_bursts_apart_settle_separately_and_keep_every_path():
    debouncer = SaveDebouncer(quiet_s=0.1)
    debouncer.note(["/p/a.py"], 0.0)
    debouncer.note(["/p/b.py", "/p/a.py"], 0.05)
    assert debouncer.due_at() == pytest.approx(0.15)
    assert debouncer.take_if_due(0.2) == (["/p/a.py", "/p/b.py"], False)
    debouncer.note([], 1.0, rescan=True)
    assert debouncer.take_if_due(1.2) == ([], True)
    assert debouncer.due_at() is None


class Calls:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def __call__(self, paths: list[str]) -> None:
        with self._lock:
            self.calls.append(paths)


@pytest.fixture
def watched(tmp_path):
    """A project folder with entry.py and model.py, watched; yields (root, watcher, calls)."""
    (tmp_path / "entry.py").write_text("BATCH = 1\n")
    (tmp_path / "model.py").write_text("WIDTH = 8\n")
    calls = Calls()
    watcher = ProjectWatcher(str(tmp_path), calls, debounce_s=0.1)
    watcher.start()
    yield tmp_path.resolve(), watcher, calls
    watcher.stop()


def test_fifty_rapid_writes_call_once_with_the_file(watched):
    root, watcher, calls = watched
    with open(root / "entry.py", "w") as entry:  # one save written in fifty pieces: closed once, at its end
        for i in range(50):
            entry.write(f"BATCH = {i}\n")
            entry.flush()
    settle(watcher, root)
    assert calls.calls == [[str(root / "entry.py")]]


def test_a_file_written_whole_settles_after_the_shorter_quiet():
    debouncer = SaveDebouncer(quiet_s=0.08, written_quiet_s=0.02)
    debouncer.note(["/p/entry.py"], 1.0)  # modified: the write may go on
    debouncer.note(["/p/entry.py"], 1.001, written=True)  # closed after writing: the file is whole
    assert debouncer.take_if_due(1.001 + 0.019) is None
    assert debouncer.take_if_due(1.001 + 0.02) == (["/p/entry.py"], False)
    debouncer.note(["/p/a.py"], 2.0, written=True)
    debouncer.note(["/p/b.py"], 2.001)  # another file is being written: the longer quiet again
    assert debouncer.take_if_due(2.001 + 0.079) is None
    assert debouncer.take_if_due(2.001 + 0.08) == (["/p/a.py", "/p/b.py"], False)
    assert SaveDebouncer(quiet_s=0.01, written_quiet_s=0.02).written_quiet_s == 0.01  # never longer


def test_a_save_by_rename_counts(watched):
    root, watcher, calls = watched
    temp = root / "entry.py.tmp-123"  # an IDE's atomic save: write a temp file, move it over the original
    temp.write_text("BATCH = 2\n")
    os.replace(temp, root / "entry.py")
    settle(watcher, root)
    assert calls.calls == [[str(root / "entry.py")]]


def test_vims_backup_rename_then_write_counts_once(watched):
    root, watcher, calls = watched
    (root / "4913").write_text("")  # vim probes the folder
    (root / "4913").unlink()
    os.rename(root / "model.py", root / "model.py~")  # backupcopy=no: the original becomes the backup
    (root / "model.py").write_text("WIDTH = 16\n")
    (root / "model.py~").unlink()
    settle(watcher, root)
    assert calls.calls == [[str(root / "model.py")]]


def test_ignored_paths_and_reads_do_not_call(watched):
    root, watcher, calls = watched
    for folder in (".git", "__pycache__", ".venv/lib/python3.11/site-packages/pkg", "venv"):
        (root / folder).mkdir(parents=True)
        (root / folder / "module.py").write_text("x = 1\n")
    for name in (".entry.py.swp", ".entry.py.swx", "entry.py~", "4913", "notes.txt"):
        (root / name).write_text("x")
    os.symlink("user@host.123", root / ".#entry.py")  # emacs' lock file
    (root / "entry.py").read_text()
    info = (root / "entry.py").stat()  # an access-time update alone (inotify calls it a modification)
    os.utime(root / "entry.py", ns=(info.st_atime_ns + 10**9, info.st_mtime_ns))
    settle(watcher, root)
    assert calls.calls == []


def test_created_deleted_and_moved_in_folders_count(watched):
    root, watcher, calls = watched
    (root / "layers.py").write_text("x = 1\n")
    settle(watcher, root)
    (root / "model.py").unlink()
    settle(watcher, root)
    staging = root / ".staging"  # not ignored by name, but built outside, then moved in whole
    staging.mkdir()
    (staging / "blocks.py").write_text("y = 2\n")
    settle(watcher, root)
    os.rename(staging, root / "pkg")
    settle(watcher, root)
    assert calls.calls == [
        [str(root / "layers.py")],
        [str(root / "model.py")],
        [str(staging / "blocks.py")],
        [str(staging / "blocks.py"), str(root / "pkg" / "blocks.py")],  # a folder moved: every file compared
    ]


def test_a_touch_counts_and_a_stopped_watcher_calls_nothing(watched):
    root, watcher, calls = watched
    before = file_signature(str(root / "entry.py"))
    info = (root / "entry.py").stat()
    os.utime(root / "entry.py", ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert file_signature(str(root / "entry.py")) != before
    settle(watcher, root)
    assert calls.calls == [[str(root / "entry.py")]]
    watcher.stop()
    assert not watcher.running
    (root / "entry.py").write_text("BATCH = 3\n")
    assert watcher.wait_until_quiet(5)
    assert calls.calls == [[str(root / "entry.py")]]


def test_ignored_folders_get_no_watch_and_new_folders_do(tmp_path):
    """A .venv inside the project must not cost one inotify watch per folder (torch alone has thousands)."""
    for folder in (".venv/lib/python3.11/site-packages/torch/nn", "__pycache__", "pkg/sub"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "entry.py").write_text("x = 1\n")
    calls = Calls()
    watcher = ProjectWatcher(str(tmp_path), calls, debounce_s=0.1)
    watcher.start()
    try:
        root = tmp_path.resolve()
        assert sorted(watcher._watches) == [str(root), str(root / "pkg"), str(root / "pkg" / "sub")]
        (root / "pkg" / "sub" / "deep").mkdir()
        settle(watcher, root)
        (root / "pkg" / "sub" / "deep" / "layer.py").write_text("y = 2\n")  # seen through the new watch
        settle(watcher, root)
        assert str(root / "pkg" / "sub" / "deep") in watcher._watches
        assert calls.calls[-1] == [str(root / "pkg" / "sub" / "deep" / "layer.py")]
    finally:
        watcher.stop()


@pytest.mark.parametrize("save", ["write", "rename"])
def test_a_save_written_whole_settles_without_the_long_quiet(tmp_path, save):
    """The long quiet is made endless here: only the event that says the file is whole (closed after writing, or
    renamed into place) can settle the save."""
    (tmp_path / "entry.py").write_text("BATCH = 1\n")
    calls = Calls()
    watcher = ProjectWatcher(str(tmp_path), calls, debounce_s=1e6, written_debounce_s=0.01)
    watcher.start()
    try:
        if save == "write":
            (tmp_path / "entry.py").write_text("BATCH = 2\n")
        else:
            (tmp_path / "entry.py.tmp-1").write_text("BATCH = 2\n")
            os.replace(tmp_path / "entry.py.tmp-1", tmp_path / "entry.py")
        for _ in range(1000):  # looks, not seconds: the call comes once the short quiet has passed
            if calls.calls:
                break
            threading.Event().wait(0.01)
        assert calls.calls == [[str(tmp_path.resolve() / "entry.py")]]
    finally:
        watcher.stop()


def test_a_longer_quiet_holds_for_a_file_written_whole_too(tmp_path):
    """Without a shorter quiet of its own, a file closed after writing waits out ``debounce_s`` like any event: a
    longer one had stayed 80 ms for such files (test_app_live's fifty saves split in two on a gap of 90 ms)."""
    (tmp_path / "entry.py").write_text("BATCH = 1\n")
    calls = Calls()
    watcher = ProjectWatcher(str(tmp_path), calls, debounce_s=1.0)
    watcher.start()
    try:
        (tmp_path / "entry.py").write_text("BATCH = 2\n")
        threading.Event().wait(0.4)  # load only delays the call: none can have come yet
        assert calls.calls == []
        assert watcher.wait_until_quiet(timeout=60)
        assert calls.calls == [[str(tmp_path.resolve() / "entry.py")]]
    finally:
        watcher.stop()
