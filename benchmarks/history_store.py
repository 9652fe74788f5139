"""What the history store costs (not a test): recording per run, listing a 10,000-run store, bytes per run.

- Recording: ``History.record`` of the bundled reports (tests/fixtures/reports: the MLP on CPU, the
  transformer on CUDA) into a store in a temp folder, with the project root inside this git repository
  (so the git commit, dirty flag and source hash are all taken, as for a user's project).  Median of
  ``--rounds`` records each, next to a bare ``git status`` (the largest part) measured interleaved.
- Listing: ``python -m skyline_tui history`` (table, default limit) and ``history --json --limit 100``
  on a store of 10,000 runs, wall time including interpreter start, best of 5, next to ``python -c pass``
  measured interleaved (the interpreter's own share).
- Size: the store file after 10,000 recorded runs (WAL checkpointed), divided by the run count.

Targets (issue 12): recording <= 50 ms, listing <= 0.5 s, <= 50 KB per run.
Usage: ``PYTHONPATH=. python benchmarks/history_store.py [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_tui.history import History  # noqa: E402
from skyline_tui.report import Report  # noqa: E402

REPORTS = [REPO / "tests" / "fixtures" / "reports" / name for name in ("mlp_cpu.json", "transformer_cuda.json")]
RUNS = 10_000


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bench_recording(folder: Path, rounds: int) -> None:
    root = REPO / "samples" / "mlp"
    for path in REPORTS:
        report = Report.from_json(path.read_text()).replace(project_root=str(root), entry_point=str(root / "entry.py"))
        store = folder / f"record-{path.stem}.db"
        record_ms, git_ms = [], []
        with History(store) as history:
            history.record(report)  # creates the file and schema: a one-off, not per run
            for _ in range(rounds):
                record_ms.append(1000 * timed(lambda report=report: history.record(report)))
                git_ms.append(1000 * timed(lambda: subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                                                                  capture_output=True, check=False)))
        print(f"record {path.stem:<18} median {statistics.median(record_ms):6.1f} ms  (max {max(record_ms):6.1f}),"
              f" of which git status alone ~{statistics.median(git_ms):5.1f} ms;  target <= 50 ms")


def build_big_store(path: Path) -> None:
    with History(path) as history:
        for report_path in REPORTS:
            history.record(Report.from_json(report_path.read_text()))
    # Copy the two real runs (rows, lines, modules, compressed report) until there are RUNS: the same bytes
    # per run as recording them one by one, without 10,000 git calls.
    db = sqlite3.connect(path)
    with db:
        while db.execute("SELECT count(*) FROM runs").fetchone()[0] < RUNS:
            columns = [row[1] for row in db.execute("PRAGMA table_info(runs)") if row[1] != "id"]
            names = ", ".join(columns)
            for source in (1, 2):
                new_id = db.execute(f"INSERT INTO runs ({names}) SELECT {names} FROM runs WHERE id = ?",
                                    (source,)).lastrowid
                db.execute("INSERT INTO lines SELECT ?, file, line, code, forward_ms, backward_ms FROM lines"
                           " WHERE run_id = ?", (new_id, source))
                db.execute("INSERT INTO modules SELECT ?, path, type, forward_ms, backward_ms, self_forward_ms,"
                           " self_backward_ms FROM modules WHERE run_id = ?", (new_id, source))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def bench_listing(path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "history (table)": [sys.executable, "-m", "skyline_tui", "history", "--history", str(path)],
        "history --json --limit 100": [sys.executable, "-m", "skyline_tui", "history", "--json", "--limit", "100",
                                       "--history", str(path)],
    }
    best = {name: float("inf") for name in commands}
    for _ in range(5):  # interleaved, best of 5
        for name, argv in commands.items():
            best[name] = min(best[name], timed(
                lambda argv=argv: subprocess.run(argv, env=env, capture_output=True, check=True)))
    for name, seconds in best.items():
        print(f"{name:<28} {seconds:6.3f} s  ({seconds / best['python -c pass']:.1f}x a bare interpreter)")
    print("target: history on 10,000 runs <= 0.5 s including the interpreter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bench_recording(Path(folder), args.rounds)
        big = Path(folder) / "big.db"
        build_big_store(big)
        size = big.stat().st_size
        print(f"store of {RUNS} runs: {size / 1e6:.1f} MB, {size / RUNS / 1024:.1f} KiB per run;  target <= 50 KB")
        bench_listing(big)


if __name__ == "__main__":
    main()
