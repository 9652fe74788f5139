"""The architecture's one-way arrows, checked in fresh interpreters: the profiler imports no UI, and the
headless --json path imports neither textual nor torch in the parent process."""

from __future__ import annotations

import subprocess
import sys

from ..conftest import FIXTURES, REPO, cli_env


def imported_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=cli_env(), capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    # Exit 0 only: a probe that crashed imported less than the real path does, and would pass any check below.
    assert result.returncode == 0, result.stderr[-2000:]
    return set(result.stdout.split())


def roots(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_the_profiler_imports_no_ui_library():
    loaded = imported_after(
        "import skyline_tui.profiler.run, skyline_tui.profiler.breakdown, skyline_tui.profiler.memory,"
        " skyline_tui.profiler.predictions.scaling, skyline_tui.worker.server")
    assert not roots(loaded) & {"textual", "rich", "pygments"}


def test_the_json_path_imports_neither_textual_nor_torch_in_the_parent():
    entry = FIXTURES / "faults" / "healthy.py"
    loaded = imported_after(
        "from skyline_tui.cli import main\n"
        f"code = main([{str(entry)!r}, '--json', '-', '-q', '--no-breakdown', '--no-memory',"
        " '--no-predictions', '--throughput-budget', '0.2'])\n"
        "assert code == 0, code")
    assert "skyline_tui.worker.client" in loaded  # it really profiled, through the worker
    assert not roots(loaded) & {"textual", "torch"}
