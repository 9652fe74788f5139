"""The store's schema, one numbered step at a time.

The version lives in SQLite's ``PRAGMA user_version``.  A store is brought forward by running every step
above its version, in one transaction, so a store is always at exactly one version.  A store from a newer
skyline-tui (a version above :data:`SCHEMA_VERSION`) is refused before anything is written to it.

Never edit a step that has shipped: add the next one.  A store written by each earlier version is kept as
explicit SQL in the tests, independent of these steps.
"""

from __future__ import annotations

# Version 1: one row per run, the full report compressed beside the columns people filter and sort on,
# and the breakdown's line and module rows in their own tables so they can be queried.
_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    entry_point TEXT NOT NULL,
    project_root TEXT NOT NULL,
    batch_size INTEGER,
    device TEXT,
    torch_version TEXT,
    config_json TEXT,
    git_commit TEXT,
    git_dirty INTEGER,
    source_hash TEXT,
    samples_per_second REAL,
    iteration_ms REAL,
    iteration_ms_stdev REAL,
    peak_bytes INTEGER,
    error_kind TEXT,
    report_zlib BLOB NOT NULL
);
CREATE INDEX runs_by_entry ON runs (entry_point, id);
CREATE TABLE lines (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    code TEXT NOT NULL,
    forward_ms REAL NOT NULL,
    backward_ms REAL NOT NULL
);
CREATE TABLE modules (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    type TEXT NOT NULL,
    forward_ms REAL NOT NULL,
    backward_ms REAL NOT NULL,
    self_forward_ms REAL NOT NULL,
    self_backward_ms REAL NOT NULL
);
"""

# Version 2: sweeps record their trials with the sweep's id and the knobs the trial set; the stdev's
# sample count so a diff can judge noise; indexes so a run's rows are found without a scan.
_V2 = """
ALTER TABLE runs ADD COLUMN sweep_id TEXT;
ALTER TABLE runs ADD COLUMN knobs_json TEXT;
ALTER TABLE runs ADD COLUMN iterations_measured INTEGER;
CREATE INDEX runs_by_sweep ON runs (sweep_id) WHERE sweep_id IS NOT NULL;
CREATE INDEX lines_by_run ON lines (run_id);
CREATE INDEX modules_by_run ON modules (run_id);
"""

# Version 3: what says a run's times may be inflated by the machine rather than the code (report.Throughput):
# the busy CPU's share, and the page faults an iteration and their estimated time.  Null for older runs.
_V3 = """
ALTER TABLE runs ADD COLUMN cpu_contention REAL;
ALTER TABLE runs ADD COLUMN page_faults_per_iteration REAL;
ALTER TABLE runs ADD COLUMN page_fault_ms REAL;
"""

# Version 4: supervised training runs (``skyline-tui run``) beside profiles.  ``kind`` says which ('profile' for
# every run recorded before); a training run keeps its summary JSON in report_zlib, its argv, step count, exit
# status and last loss as columns, and its steps (downsampled past a few thousand) in their own table.
_V4 = """
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'profile';
ALTER TABLE runs ADD COLUMN argv_json TEXT;
ALTER TABLE runs ADD COLUMN steps INTEGER;
ALTER TABLE runs ADD COLUMN exit_code INTEGER;
ALTER TABLE runs ADD COLUMN final_loss REAL;
CREATE TABLE steps (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    steps_merged INTEGER NOT NULL,
    end_s REAL NOT NULL,
    wall_ms REAL NOT NULL,
    forward_ms REAL NOT NULL,
    backward_ms REAL NOT NULL,
    optimizer_ms REAL NOT NULL,
    evaluation_ms REAL NOT NULL,
    other_ms REAL NOT NULL,
    samples INTEGER,
    loss REAL,
    losses_json TEXT,
    allocated_bytes INTEGER,
    reserved_bytes INTEGER,
    peak_allocated_bytes INTEGER,
    rss_bytes INTEGER
);
CREATE INDEX steps_by_run ON steps (run_id, step);
"""

# Version 5: the metrics a script logged with track.log, one row per (step, metric); a NaN is stored as NULL.
_V5 = """
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL
);
CREATE INDEX metrics_by_run ON metrics (run_id, step);
"""

# STEPS[n] brings a store from version n to n + 1.
STEPS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5)
SCHEMA_VERSION = len(STEPS)


def statements(script: str) -> list[str]:
    """The statements of a step, run one by one inside the caller's transaction (``executescript``
    would commit it)."""
    return [part.strip() for part in script.split(";") if part.strip()]
