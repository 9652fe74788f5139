"""When whoever reads the worker's events is gone, the worker still ends its run's whole process group.

The real worker process, started as its client starts it, with this test holding both ends: the test stops
reading events (closes its end) while keeping the request pipe open, so the worker learns it only from a write
that fails, in the middle of relaying a chatty run."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from skyline_tui.config import ProfileConfig
from skyline_tui.worker import protocol as p
from skyline_tui.worker.client import _PACKAGE_PARENT

from ..processes import new_marker, processes_with_marker

CHATTY_WITH_A_HELPER = """
import subprocess
import time
import torch

subprocess.Popen(["sleep", "300"])  # something the user's code started: in the run's process group
open({started!r}, "w").close()

def skyline_model_provider():
    return torch.nn.Linear(4, 2)

def skyline_input_provider(batch_size=4):
    return (torch.randn(batch_size, 4),)

def skyline_iteration_provider(model):
    def iteration(x):
        while True:  # never done: the run is still relaying output whenever the test stops reading
            print("x" * 200)
            time.sleep(0.01)
    return iteration
"""


def test_a_worker_whose_reader_is_gone_ends_the_run_s_whole_group(tmp_path, monkeypatch):
    marker = new_marker()
    started = tmp_path / "started"
    entry = tmp_path / "entry.py"
    entry.write_text(CHATTY_WITH_A_HELPER.format(started=str(started)))
    requests_r, requests_w = os.pipe()
    events_r, events_w = os.pipe()
    env = {**os.environ, "PYTHONPATH": _PACKAGE_PARENT, "SKYLINE_TEST_MARKER": marker, **p.WORKER_ENVIRONMENT}
    worker = subprocess.Popen([sys.executable, "-m", "skyline_tui.worker", str(requests_r), str(events_w)],
                              pass_fds=(requests_r, events_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    os.close(requests_r)
    os.close(events_w)
    try:
        request = p.ProfileRequest(run_id=1, entry=str(entry), root=str(tmp_path),
                                   config=ProfileConfig.quick(timeout_s=120.0, predictions=False))
        os.write(requests_w, p.encode(request))
        deadline = time.monotonic() + 120
        while not started.exists():  # the helper runs: the run child has loaded the entry
            assert worker.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        os.close(events_r)  # nobody reads events any more; the request pipe stays open (no EOF to notice)
        events_r = -1
        worker.wait(timeout=60)  # its next relay of the run's output fails: it stops
        deadline = time.monotonic() + 15
        while processes_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        # Before, SIGPIPE killed the worker outright: the run child died with it (PR_SET_PDEATHSIG), but the
        # 'sleep' its code started lived on.  Now the failed write raises, and the worker kills the group.
        assert processes_with_marker(marker) == [], "the run's process group outlived the worker"
    finally:
        for pid in processes_with_marker(marker):
            os.kill(pid, 9)
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        os.close(requests_w)
        if events_r >= 0:
            os.close(events_r)
