"""The Python API: ``skyline_tui.profile`` runs the real worker and hands back the Report dataclass."""

from __future__ import annotations

import subprocess
import sys

import pytest

import skyline_tui
from skyline_tui.config import ProfileConfig
from skyline_tui.report import Report

from ..conftest import FIXTURES, cli_env

CI = FIXTURES / "ci"
QUICK = ProfileConfig.quick()


def test_an_iteration_that_raises_comes_back_in_report_error_not_as_an_exception():
    report = skyline_tui.profile(str(CI / "raises.py"), config=QUICK, predictions=False)
    assert isinstance(report, Report)
    assert report.error is not None and report.error.kind == "user_code"
    assert "boom in the user's iteration" in report.error.message
    assert report.error.file == "raises.py" and report.error.line == 18  # the raise statement
    assert report.throughput is None


def test_budgets_and_options_mirror_the_command_line():
    report = skyline_tui.profile(CI / "sleepy.py", batch_size=3, config=QUICK, breakdown=False, memory=False,
                                 predictions=False, budgets=["iteration_ms > 5ms", "iteration_ms > 2s"])
    assert report.error is None
    assert report.batch_size == 3
    assert (report.breakdown, report.memory, report.predictions) == (None, None, None)
    assert report.throughput.iteration_ms >= 20.0  # the fixture sleeps 20 ms per iteration
    assert [(b.expr, b.ok) for b in report.budgets] == [("iteration_ms > 5ms", False), ("iteration_ms > 2s", True)]
    assert report.budgets[0].value == report.throughput.iteration_ms


def test_a_missing_entry_point_is_a_report_error_too(tmp_path):
    report = skyline_tui.profile(tmp_path / "nope.py")
    assert report.error is not None and report.error.kind == "file"


def test_a_mistake_in_the_call_raises_before_anything_runs():
    with pytest.raises(ValueError, match="unknown metric 'peek_memory'"):
        skyline_tui.profile(str(CI / "sleepy.py"), budgets=["peek_memory > 1GiB"])
    with pytest.raises(TypeError):
        skyline_tui.profile(str(CI / "sleepy.py"), no_such_option=True)


def test_importing_the_package_imports_neither_torch_nor_textual():
    probe = ("import sys, skyline_tui\n"
             "print(sorted(skyline_tui.__all__), skyline_tui.Report.__name__,\n"
             "      [m for m in ('torch', 'textual', 'skyline_tui.worker.client') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(),
                            timeout=60, check=True)
    assert result.stdout.strip() == "['Report', '__version__', 'profile', 'track'] Report []"
