"""The sweep's parent process imports neither textual nor torch (trials run in the worker), nor ray
unless --ray is given: checked in a fresh interpreter that really runs a one-trial sweep."""

from __future__ import annotations

from .conftest import FIXTURES
from .test_boundaries import imported_after, roots


def test_a_local_sweep_imports_neither_textual_nor_torch_nor_ray_in_the_parent(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("hidden: 4\n")
    entry = FIXTURES / "sweep" / "knobs_mlp.py"
    loaded = imported_after(
        "from skyline_tui.cli import main\n"
        f"code = main(['sweep', {str(entry)!r}, {str(spec)!r}, '-q', '--no-history', '--json', '/dev/null',"
        " '--throughput-budget', '0.2', '--warmup', '0'])\n"
        "assert code == 0, code")
    assert "skyline_tui.worker.client" in loaded and "skyline_tui.sweep.local" in loaded  # it really ran
    assert not roots(loaded) & {"textual", "torch", "ray"}
