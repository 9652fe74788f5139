"""Shared fixtures: a way to write small entry points, and the CLI run as a real subprocess.

Also runs ``async def`` tests (the app's Pilot tests) on a fresh event loop: there is no pytest-asyncio
in this environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from skyline_tui.config import ProfileConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # so the app tests can import app_support
SAMPLES = REPO / "samples"

# Started in the background by a non-interactive shell (``pytest &`` in a script), this process ignores SIGINT,
# and so would every script the tests start: Python installs no KeyboardInterrupt handler where SIGINT is
# ignored, and the Ctrl-C tests would wait forever.  Caught here, SIGINT is default again after their exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# A tiny, valid entry point; tests replace pieces of it to break the contract one way at a time.
TINY_ENTRY = '''
import torch
import torch.nn as nn


def skyline_model_provider():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def skyline_input_provider(batch_size=4):
    return (torch.randn(batch_size, 8), torch.randint(0, 2, (batch_size,)))


def skyline_iteration_provider(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def iteration(x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    return iteration
'''


@pytest.fixture
def write_entry(tmp_path):
    """write_entry(source, name="entry.py", **siblings) -> Path of the entry point in a fresh folder."""

    def write(source: str = TINY_ENTRY, name: str = "entry.py", **siblings: str) -> Path:
        for sibling, text in siblings.items():
            (tmp_path / f"{sibling}.py").write_text(textwrap.dedent(text))
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def cpu_clock(monkeypatch):
    """Iterations timed in the calling thread's CPU time, on one intra-op thread: an entry that spins for a
    known CPU time per iteration (``time.thread_time``) then takes that time however loaded the machine is
    (on a shared box other jobs inflate wall-clock times, and even sleeps, by 2-10x in bursts), and no round
    is set aside for having waited for a CPU.  The thread's, not the process's: in a whole-suite run, threads
    other tests leave behind add their CPU time to the process's (a 6 % tolerance failed once in CI by 1.5 ms
    on 24).  Budgets stay on the wall clock."""
    import time
    import types

    import torch

    from skyline_tui.profiler import timing

    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter_ns=time.thread_time_ns,
                                                               monotonic=time.monotonic))
    # In CPU time a wait for a CPU costs nothing: no round is set aside for one (test_round_waits.py has the rule).
    monkeypatch.setattr(timing, "thread_wait_ns", lambda: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def breakdown_on_cpu_clock() -> Iterator[None]:
    """The breakdown's instruments timed in the calling thread's CPU time, on one intra-op thread: work that
    spins for a known CPU time (``time.thread_time``) is then charged that time however loaded the machine
    is, so a test can bound it on both sides.  (On CPU, autograd runs backward on the thread that calls it.)"""
    import time
    import types

    import torch

    from skyline_tui.profiler import attribution

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(attribution, "time", types.SimpleNamespace(perf_counter_ns=time.thread_time_ns))
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def breakdown_cpu_clock() -> Iterator[None]:
    with breakdown_on_cpu_clock():
        yield


@pytest.fixture
def quick_config() -> ProfileConfig:
    return ProfileConfig.quick(breakdown=False, memory=False, predictions=False)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # Profiles of the fixtures and samples would otherwise record into a store inside the repository, shared
    # by every test run; a test about the history passes --history (which wins over this) or sets its own.
    env["SKYLINE_TUI_HISTORY"] = "off"
    return env


# A safety net for a hung async test; each wait inside a test has a shorter bound that says what it waited for.
ASYNC_TEST_LIMIT_S = 300

# Every phase's budget small (health's 1 s still stretches to the 5 iterations a median needs); a test that
# reads one phase also turns the others off.
QUICK_FLAGS = ["--throughput-budget", "0.3", "--predictions-budget", "1.5", "--health-budget", "1", "--timeout", "60"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skyline_tui", *args], capture_output=True, text=True,
                          cwd=cwd, env=cli_env(), timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(autouse=True)
def _forget_user_modules(tmp_path_factory):
    """In-process profiles import user modules (model.py, ...): forget them after each test, so the next
    test's sibling module of the same name is loaded fresh (the worker gets this from forking)."""
    before_path = list(sys.path)
    before = set(sys.modules)
    yield
    sys.path[:] = before_path
    user_dirs = (str(tmp_path_factory.getbasetemp()), str(SAMPLES), str(FIXTURES))
    for name in set(sys.modules) - before:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if name == "__skyline_entry__" or file.startswith(user_dirs):
            del sys.modules[name]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker's torch takes its share of the cores: its own (the in-process tests') and,
    through OMP_NUM_THREADS (unless already set), its subprocesses' (the CLI's worker, run children, scripts).
    Two workers with an intra-op thread per core each spin waiting for descheduled peers: the health tests'
    reference models took 93 CPU-s on two workers, 29.5 CPU-s with one thread each (48 -> 16 s)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if os.environ.get("PYTEST_XDIST_WORKER") and workers:
        share = max(1, len(os.sched_getaffinity(0)) // int(workers))
        os.environ.setdefault("OMP_NUM_THREADS", str(share))
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@contextlib.contextmanager
def alone(tmp_path_factory: pytest.TempPathFactory, exclusive: bool = True) -> Iterator[None]:
    """Under pytest-xdist: while this holds (exclusive), no other test of this run is running.  Every test
    holds it shared (the autouse fixture below); a test marked ``alone``, or a module fixture that measures
    for such tests, holds it exclusive: one whose bound a busy machine can break, or that loads the CPUs on
    purpose.  Other jobs on the machine are not stopped: the test must still hold on a loaded machine; this
    only keeps the suite's own workers from adding to the load.  A turnstile lock, taken first by everyone,
    keeps a waiting exclusive holder from being overtaken by new shared ones."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    import fcntl

    folder = tmp_path_factory.getbasetemp().parent  # the run's: each worker's base temp is a folder in it
    with open(folder / "alone.turnstile", "a") as turnstile, open(folder / "alone.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _alone_or_beside_others(request, tmp_path_factory):
    with alone(tmp_path_factory, exclusive=request.node.get_closest_marker("alone") is not None):
        yield


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that share a module-scoped fixture (one profile read by several tests) run on one xdist
    worker, so the fixture's work is done once, not once per worker."""
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is None:
            continue
        if any(definitions[-1].scope == "module" for definitions in fixtures.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), timeout=ASYNC_TEST_LIMIT_S))
    return True
