"""The history from the command line, as real subprocesses: a --json run records a row, where the store
lives by default, --no-history, a read-only store that only warns, the history and diff verbs, and the
import boundaries of these paths (neither textual nor torch)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from skyline_tui.history import History

from ..conftest import FIXTURES, QUICK_FLAGS, cli_env, run_cli
from ..history_support import make_report
from ..architecture.test_boundaries import imported_after, roots

FAST = [*QUICK_FLAGS, "--no-predictions", "--no-health", "-q"]


def healthy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("healthy.py", "_base.py"):
        shutil.copy(FIXTURES / "faults" / name, project / name)
    return project / "healthy.py"


def run_with_default_history(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = cli_env()
    del env["SKYLINE_TUI_HISTORY"]  # the user's default: a store under the project root
    return subprocess.run([sys.executable, "-m", "skyline_tui", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300, stdin=subprocess.DEVNULL, check=False)


def test_a_json_run_records_a_row_in_the_default_store_under_the_project(tmp_path):
    entry = healthy_project(tmp_path)
    out = tmp_path / "report.json"
    result = run_with_default_history(str(entry), "--json", str(out), *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())  # what the run wrote, independently of the store
    store = entry.parent / ".skyline-tui" / "history.db"
    assert (entry.parent / ".skyline-tui" / ".gitignore").read_text() == "*\n"
    with History(store) as history:
        (run,) = history.runs()
        assert history.report(run["id"]).to_dict() == report
    assert run["entry_point"] == str(entry) and run["batch_size"] == 4 and run["status"] == "ok"
    assert run["iteration_ms"] == report["throughput"]["iteration_ms"]
    assert run["config"]["predictions"] is False and run["config"]["throughput_budget_s"] == 0.3
    # `history` in the project folder finds the store without being told where it is.
    listed = run_with_default_history("history", "--json", cwd=entry.parent)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert {k: row[k] for k in ("id", "entry_point", "iteration_ms", "error_kind")} == {
        "id": run["id"], "entry_point": str(entry), "iteration_ms": report["throughput"]["iteration_ms"],
        "error_kind": None}


def test_no_history_records_nothing(tmp_path):
    entry = healthy_project(tmp_path)
    result = run_with_default_history(str(entry), "--json", "-", "--no-history", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["error"] is None
    assert not (entry.parent / ".skyline-tui").exists()


def test_an_unwritable_store_costs_one_warning_line_not_the_report(tmp_path):
    out = tmp_path / "report.json"
    store = "/proc/self/history.db"  # nobody may create a file there, root included
    result = run_cli(str(FIXTURES / "faults" / "healthy.py"), "--json", str(out), "--history", store, *FAST,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(out.read_text())["throughput"]["iteration_ms"] > 0
    warnings = [line for line in result.stderr.splitlines() if "history" in line]
    assert len(warnings) == 1 and store in warnings[0], result.stderr


def test_history_table_lists_runs_newest_first(tmp_path):
    store = tmp_path / "h.db"
    with History(store) as history:
        history.record(make_report(tmp_path, iteration_ms=10.0, batch_size=8))
        history.record(make_report(tmp_path, iteration_ms=20.0, batch_size=8))
    result = run_cli("history", "--history", str(store), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, newest, oldest = result.stdout.splitlines()
    assert header.split()[:3] == ["id", "time", "(UTC)"]
    assert newest.split()[0] == "2" and "400.0" in newest and "20.00 ± 0.10" in newest  # 8 per 20 ms
    assert oldest.split()[0] == "1" and "800.0" in oldest
    missing = run_cli("history", "--history", str(tmp_path / "none.db"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "none.db" in missing.stderr


def test_history_table_names_a_sweep_trials_knobs_beside_its_batch(tmp_path):
    # Two trials at one batch size that differ in precision only: the table must tell them apart.
    store = tmp_path / "h.db"
    with History(store) as history:
        for precision, ms in (("fp32", 20.0), ("bf16", 10.0)):
            history.record(make_report(tmp_path, iteration_ms=ms, batch_size=8), sweep_id="s1",
                           knobs={"batch_size": 8, "precision": precision})
    result = run_cli("history", "--history", str(store), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _header, bf16, fp32 = result.stdout.splitlines()
    assert bf16.rstrip().endswith("precision=bf16") and "10.00" in bf16, bf16
    assert fp32.rstrip().endswith("precision=fp32") and "20.00" in fp32, fp32
    assert "batch_size=" not in result.stdout  # the batch has its own column


def test_history_and_diff_paths_import_neither_textual_nor_torch(tmp_path):
    store = tmp_path / "h.db"
    with History(store) as history:
        history.record(make_report(tmp_path))
        history.record(make_report(tmp_path))
    loaded = imported_after(
        "import io, contextlib\n"
        "from skyline_tui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['history', '--history', {str(store)!r}]) == 0\n"
        f"    assert main(['diff', '--history', {str(store)!r}]) == 0\n"
        "import skyline_tui.comparison.changes")
    assert {"skyline_tui.history.lookup", "skyline_tui.history.text"} <= loaded  # the verbs really ran
    assert not roots(loaded) & {"textual", "torch", "rich"}


def test_the_json_run_with_history_imports_neither_textual_nor_torch(tmp_path):
    entry = FIXTURES / "faults" / "healthy.py"
    store = tmp_path / "h.db"
    loaded = imported_after(
        "from skyline_tui.cli import main\n"
        f"code = main([{str(entry)!r}, '--json', {str(tmp_path / 'r.json')!r}, '-q', '--no-breakdown',"
        f" '--no-memory', '--no-predictions', '--throughput-budget', '0.2', '--history', {str(store)!r}])\n"
        "assert code == 0, code")
    assert "skyline_tui.history.store" in loaded and not roots(loaded) & {"textual", "torch"}
    with History(store) as history:
        assert len(history.runs()) == 1
