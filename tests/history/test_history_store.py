"""The history store on a real SQLite file: recording, reading back, concurrent writers, a killed writer,
an older and a newer schema, a corrupt file, a read-only location."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

from skyline_tui.history import (
    SCHEMA_VERSION,
    History,
    HistoryVersionError,
    default_history_path,
    record_run,
    resolve_history_path,
)
from skyline_tui.history.text import history_table
from skyline_tui.report import ErrorInfo, Report

from ..conftest import FIXTURES, REPO, cli_env
from ..history_support import integrity, make_report


def test_a_run_is_recorded_with_its_numbers_rows_and_report(tmp_path):
    report = make_report(tmp_path, iteration_ms=20.0, stdev=0.5, batch_size=4)
    with History(tmp_path / "h.db") as history:
        run_id = history.record(report, config={"timeout_s": 5.0}, sweep_id="s1", knobs={"lr": 0.1})
        (run,) = history.runs()
        assert history.report(run_id) == report  # the full report comes back, field for field
    assert run["id"] == run_id
    assert run["samples_per_second"] == pytest.approx(200.0)  # 4 samples per 20 ms
    assert (run["iteration_ms"], run["iteration_ms_stdev"], run["peak_bytes"]) == (20.0, 0.5, 1_000_000)
    assert run["config"] == {"timeout_s": 5.0} and run["knobs"] == {"lr": 0.1} and run["sweep_id"] == "s1"
    assert run["entry_point"] == str(tmp_path / "entry.py") and run["status"] == "ok"
    with sqlite3.connect(tmp_path / "h.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT file, line, code, forward_ms + backward_ms FROM lines ORDER BY line").fetchall() \
            == [("entry.py", 5, "x = a(x)", 3.0), ("entry.py", 6, "x = b(x)", 2.0)]
        assert db.execute("SELECT path FROM modules ORDER BY path").fetchall() == [("",), ("fc",)]


def test_failed_runs_are_recorded_with_their_error_kind(tmp_path):
    failed = Report(entry_point=str(tmp_path / "e.py"), project_root=str(tmp_path),
                    error=ErrorInfo(kind="user_code", message="boom"))
    with History(tmp_path / "h.db") as history:
        history.record(failed)
        (run,) = history.runs()
    assert run["error_kind"] == "user_code" and run["status"] == "user_code" and run["samples_per_second"] is None


def test_runs_are_newest_first_and_filter_by_entry_batch_and_limit(tmp_path):
    with History(tmp_path / "h.db") as history:
        first = history.record(make_report(tmp_path, entry="a.py"))
        second = history.record(make_report(tmp_path, entry="b.py", batch_size=16))
        third = history.record(make_report(tmp_path, entry="a.py"))
        assert [r["id"] for r in history.runs()] == [third, second, first]
        assert [r["id"] for r in history.runs(str(tmp_path / "a.py"))] == [third, first]
        assert [r["id"] for r in history.runs(limit=1)] == [third]
        assert [r["id"] for r in history.runs(batch_size=16)] == [second]


def test_git_commit_dirty_flag_and_source_hash_are_recorded(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    (tmp_path / "model.py").write_text("x = 1\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    with History(tmp_path / "elsewhere" / "h.db") as history:
        history.record(make_report(tmp_path))
        (tmp_path / "model.py").write_text("x = 2\n")
        history.record(make_report(tmp_path))
        edited, clean = history.runs()
    assert clean["git_commit"] == head and clean["git_dirty"] is False
    assert edited["git_commit"] == head and edited["git_dirty"] is True
    assert clean["source_hash"] != edited["source_hash"]


def test_a_tree_past_the_walks_bounds_has_no_source_hash_rather_than_a_hash_of_part_of_it(tmp_path, monkeypatch):
    # A script in the home folder makes it the root, beside a conda install and datasets: the walk stops at its
    # bounds (lowered here to keep the tree small) and the run's source is unknown, never half-hashed.
    from skyline_tui.history import provenance

    root = tmp_path / "project"
    for index in range(6):
        (root / f"pkg{index}").mkdir(parents=True)
        (root / f"pkg{index}" / "mod.py").write_text(f"x = {index}\n")
    whole = provenance.source_hash(str(root))
    (root / "pkg5" / "mod.py").write_text("x = 55\n")  # the last file in sorted order still counts
    assert whole is not None and provenance.source_hash(str(root)) not in (None, whole)
    # The tree: 7 folders (the root and its 6), 12 entries (6 folders, 6 files), 6 Python files.
    for bound, size in (("MAX_WALKED_FOLDERS", 7), ("MAX_WALKED_ENTRIES", 12), ("MAX_HASHED_FILES", 6)):
        with monkeypatch.context() as patch:
            patch.setattr(provenance, bound, size)
            assert provenance.source_hash(str(root)) is not None, bound
            patch.setattr(provenance, bound, size - 1)
            assert provenance.source_hash(str(root)) is None, bound
            with History(tmp_path / f"{bound}.db") as history:
                history.record(make_report(root))
                assert history.runs()[0]["source_hash"] is None


def test_the_default_store_lives_under_the_project_and_ignores_itself(tmp_path, monkeypatch):
    monkeypatch.delenv("SKYLINE_TUI_HISTORY", raising=False)
    path = resolve_history_path(None, False, tmp_path)
    assert path == tmp_path / ".skyline-tui" / "history.db" == default_history_path(tmp_path)
    assert record_run(make_report(tmp_path), path) == 1
    assert (tmp_path / ".skyline-tui" / ".gitignore").read_text() == "*\n"
    assert resolve_history_path("x.db", False, tmp_path) == Path("x.db")
    assert resolve_history_path("x.db", True, tmp_path) is None
    monkeypatch.setenv("SKYLINE_TUI_HISTORY", str(tmp_path / "env.db"))
    assert resolve_history_path(None, False, tmp_path) == tmp_path / "env.db"
    monkeypatch.setenv("SKYLINE_TUI_HISTORY", "off")
    assert resolve_history_path(None, False, tmp_path) is None


WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from history_support import make_report
from skyline_tui.history import History
path, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(count):
    with History(path) as history:  # a fresh connection per run, as separate profiles would open one
        history.record(make_report(Path(path).parent), knobs={{"writer": tag, "i": i}})
"""


def test_concurrent_writers_from_several_processes_lose_no_run(tmp_path):
    path, writers, each = tmp_path / "h.db", 4, 25
    script = WRITER.format(tests=str(REPO / "tests"))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(w), str(each)], env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(writers)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    for p in procs:
        p.stdout.close()  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]
    assert all(code == 0 for code, _ in results), [err[-1500:] for _, err in results]
    with History(path) as history:
        knobs = {(r["knobs"]["writer"], r["knobs"]["i"]) for r in history.runs()}
    assert knobs == {(str(w), i) for w in range(writers) for i in range(each)}
    assert integrity(path) == "ok"


# The real record() path, paused inside its transaction (after the run row, before the commit) by a
# connection whose module insert announces itself and waits to be killed.
KILLED_WRITER = """
import functools, sqlite3, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from history_support import make_report
from skyline_tui.history import History

class StallingConnection(sqlite3.Connection):
    def executemany(self, sql, rows):
        result = super().executemany(sql, rows)
        if sql.startswith("INSERT INTO modules"):
            print("in transaction", flush=True)
            time.sleep(600)
        return result

sqlite3.connect = functools.partial(sqlite3.connect, factory=StallingConnection)
History(sys.argv[1]).record(make_report(Path(sys.argv[1]).parent))
"""


def test_a_writer_killed_mid_transaction_leaves_the_store_intact(tmp_path):
    path = tmp_path / "h.db"
    with History(path) as history:
        kept = history.record(make_report(tmp_path))
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER.format(tests=str(REPO / "tests")), str(path)],
                              env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = writer.stdout.readline()  # type: ignore[union-attr]
        assert line == "in transaction\n", writer.stderr.read()  # type: ignore[union-attr]
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close()  # type: ignore[union-attr]
        writer.stderr.close()  # type: ignore[union-attr]
    assert integrity(path) == "ok"
    with History(path) as history:
        assert [r["id"] for r in history.runs()] == [kept]  # the killed run is gone, nothing else
        after = history.record(make_report(tmp_path))  # and the store takes the next run
        assert [r["id"] for r in history.runs()] == [after, kept]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM lines").fetchone()[0] == 4  # 2 lines for each kept run


def write_version_1_store(path: Path, report_json: str) -> None:
    """The store as skyline-tui's first history version wrote it, by hand (not through migrations.py)."""
    db = sqlite3.connect(path)
    db.executescript(textwrap.dedent("""
        CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL,
            entry_point TEXT NOT NULL, project_root TEXT NOT NULL, batch_size INTEGER, device TEXT,
            torch_version TEXT, config_json TEXT, git_commit TEXT, git_dirty INTEGER, source_hash TEXT,
            samples_per_second REAL, iteration_ms REAL, iteration_ms_stdev REAL, peak_bytes INTEGER,
            error_kind TEXT, report_zlib BLOB NOT NULL);
        CREATE INDEX runs_by_entry ON runs (entry_point, id);
        CREATE TABLE lines (run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE, file TEXT NOT NULL,
            line INTEGER NOT NULL, code TEXT NOT NULL, forward_ms REAL NOT NULL, backward_ms REAL NOT NULL);
        CREATE TABLE modules (run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE, path TEXT NOT NULL,
            type TEXT NOT NULL, forward_ms REAL NOT NULL, backward_ms REAL NOT NULL,
            self_forward_ms REAL NOT NULL, self_backward_ms REAL NOT NULL);
        PRAGMA user_version = 1;
    """))
    db.execute("INSERT INTO runs (created_at, entry_point, project_root, batch_size, device, config_json,"
               " samples_per_second, iteration_ms, iteration_ms_stdev, peak_bytes, report_zlib)"
               " VALUES ('2024-12-31T00:00:00Z', '/old/entry.py', '/old', 64, 'CPU', '{\"timeout_s\": 9}',"
               " 3413.3, 18.75, 0.62, 14575206, ?)", (zlib.compress(report_json.encode()),))
    db.execute("INSERT INTO lines VALUES (1, 'entry.py', 20, 'x = F.relu(self.fc2(x))', 4.1, 7.9)")
    db.commit()
    db.close()


def test_a_store_written_by_the_previous_schema_version_is_read_and_upgraded(tmp_path):
    path = tmp_path / "v1.db"
    report_json = (FIXTURES / "reports" / "mlp_cpu.json").read_text()
    write_version_1_store(path, report_json)
    with History(path) as history:
        (old,) = history.runs()
        assert (old["id"], old["iteration_ms"], old["config"], old["sweep_id"]) == (1, 18.75, {"timeout_s": 9}, None)
        assert history.report(1) == Report.from_json(report_json)
        new = history.record(make_report(tmp_path), sweep_id="s")
        assert [r["id"] for r in history.runs()] == [new, 1]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert integrity(path) == "ok"


def write_version_2_store(path: Path, report_json: str) -> None:
    """Version 2 by hand: version 1 and the sweep's columns and the indexes (not through migrations.py)."""
    write_version_1_store(path, report_json)
    db = sqlite3.connect(path)
    db.executescript(textwrap.dedent("""
        ALTER TABLE runs ADD COLUMN sweep_id TEXT;
        ALTER TABLE runs ADD COLUMN knobs_json TEXT;
        ALTER TABLE runs ADD COLUMN iterations_measured INTEGER;
        CREATE INDEX runs_by_sweep ON runs (sweep_id) WHERE sweep_id IS NOT NULL;
        CREATE INDEX lines_by_run ON lines (run_id);
        CREATE INDEX modules_by_run ON modules (run_id);
        PRAGMA user_version = 2;
    """))
    db.close()


def test_a_version_2_store_gains_the_machine_columns_and_a_busy_run_is_noted(tmp_path):
    path = tmp_path / "v2.db"
    write_version_2_store(path, (FIXTURES / "reports" / "mlp_cpu.json").read_text())
    busy = make_report(tmp_path, iteration_ms=186.6)
    busy = busy.replace(throughput=dataclasses.replace(busy.throughput, cpu_contention=0.81,
                                                       page_faults_per_iteration=3622.0, page_fault_ms=40.0))
    with History(path) as history:
        new = history.record(busy)
        runs = {run["id"]: run for run in history.runs()}
    assert (runs[1]["cpu_contention"], runs[1]["page_faults_per_iteration"], runs[1]["page_fault_ms"]) == \
        (None, None, None)
    assert (runs[new]["cpu_contention"], runs[new]["page_faults_per_iteration"], runs[new]["page_fault_ms"]) == \
        (0.81, 3622.0, 40.0)
    table = history_table([runs[new], runs[1]]).splitlines()
    assert table[0].split()[-1] == "note"
    assert table[1].endswith("busy CPU 81%, page faults ≈ 40.0 ms") and table[2].endswith("ok"), table
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert integrity(path) == "ok"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_newer_store_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, shape_from_the_future TEXT)")
        db.execute("PRAGMA user_version = 99")
    before = sha256(path)
    with pytest.raises(HistoryVersionError, match="newer skyline-tui"):
        History(path).runs()
    warnings = io.StringIO()
    assert record_run(make_report(tmp_path), path, stream=warnings) is None
    assert warnings.getvalue().count("\n") == 1 and str(path) in warnings.getvalue()
    assert "store version 99" in warnings.getvalue()
    assert sha256(path) == before and not (tmp_path / "future.db-wal").exists()


def test_a_file_that_is_not_a_database_warns_in_one_line_and_is_kept(tmp_path):
    path = tmp_path / "history.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = sha256(path)
    warnings = io.StringIO()
    assert record_run(make_report(tmp_path), path, stream=warnings) is None
    text = warnings.getvalue()
    assert text.count("\n") == 1 and str(path) in text and "not a usable history store" in text
    assert sha256(path) == before


def read_only_locations(tmp_path: Path) -> list[Path]:
    locations = [Path("/proc/self/history.db")]  # a folder nobody may create files in, root included
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        locations.append(locked / "history.db")
    return locations


def test_a_read_only_location_warns_in_one_line_naming_the_file(tmp_path):
    for path in read_only_locations(tmp_path):
        warnings = io.StringIO()
        assert record_run(make_report(tmp_path), path, stream=warnings) is None
        assert warnings.getvalue().count("\n") == 1 and str(path) in warnings.getvalue(), warnings.getvalue()


def test_dataframe_flattens_config_and_knobs_into_columns(tmp_path):
    pandas = pytest.importorskip("pandas")
    with History(tmp_path / "h.db") as history:
        history.record(make_report(tmp_path, iteration_ms=10.0), config={"timeout_s": 5.0}, knobs={"lr": 0.1})
        history.record(make_report(tmp_path, iteration_ms=20.0), config={"timeout_s": 6.0}, knobs={"lr": 0.2})
        frame = history.dataframe()
    assert isinstance(frame, pandas.DataFrame) and list(frame.index) == [1, 2]
    assert list(frame["config.timeout_s"]) == [5.0, 6.0] and list(frame["knobs.lr"]) == [0.1, 0.2]
    assert list(frame["iteration_ms"]) == [10.0, 20.0]


def test_dataframe_without_pandas_names_the_extra(tmp_path):
    script = ("import sys; sys.modules['pandas'] = None\n"
              "from skyline_tui.history import History\n"
              f"History({str(tmp_path / 'h.db')!r}).dataframe()")
    result = subprocess.run([sys.executable, "-c", script], check=False, env=cli_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "skyline-tui[pandas]" in result.stderr.splitlines()[-1]


def test_recording_a_run_of_an_unknown_kind_is_the_callers_mistake_and_writes_nothing(tmp_path):
    path = tmp_path / "history.db"
    with pytest.raises(ValueError, match="unknown run kind 'trial'"):
        record_run(make_report(tmp_path), path, kind="trial")
    with pytest.raises(ValueError, match="of kind 'train' is recorded from its RunSummary, not a Report"):
        record_run(make_report(tmp_path), path, kind="train")
    assert not path.exists()
    assert record_run(make_report(tmp_path), path, kind="profile") == 1
    assert record_run(make_report(tmp_path), None) is None  # history off

