"""The sweep's parent process imports neither textual nor torch (trials run in the worker), nor ray
unless --ray is given: checked in a fresh interpreter that really runs a one-trial sweep."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading

from skyline_tui.sweep.runner import _write_json

from ..conftest import FIXTURES
from ..architecture.test_boundaries import imported_after, roots


def test_a_local_sweep_imports_neither_textual_nor_torch_nor_ray_in_the_parent(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("hidden: 4\n")
    entry = FIXTURES / "sweep" / "knobs_mlp.py"
    loaded = imported_after(
        "from skyline_tui.cli import main\n"
        f"code = main(['sweep', {str(entry)!r}, {str(spec)!r}, '-q', '--no-history',"
        f" '--json', {str(tmp_path / 'out.json')!r},"
        " '--throughput-budget', '0.2', '--warmup', '0'])\n"
        "assert code == 0, code")
    assert "skyline_tui.worker.client" in loaded and "skyline_tui.sweep.local" in loaded  # it really ran
    assert not roots(loaded) & {"textual", "torch", "ray"}


def test_the_sweep_json_goes_through_a_fifo_and_leaves_it_a_fifo(tmp_path):
    """A device or FIFO is written through, never renamed over (a rename once replaced /dev/null itself)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []

    def read() -> None:
        with open(fifo, encoding="utf-8") as fh:
            received.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert _write_json({"sweep_id": "x", "trials": []}, str(fifo), sys.stderr) == 0
    reader.join(30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(received[0]) == {"sweep_id": "x", "trials": []}
