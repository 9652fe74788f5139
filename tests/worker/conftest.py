"""The real worker for this folder's tests (test_worker, test_worker_reaping): started, its events recorded,
closed, and no process of it left behind."""

from __future__ import annotations

import pytest

from skyline_tui.worker.client import WorkerClient

from ..processes import new_marker, processes_with_marker
from .test_worker import Recorder


@pytest.fixture
def worker(monkeypatch):
    marker = new_marker()
    monkeypatch.setenv("SKYLINE_TEST_MARKER", marker)
    recorder = Recorder()
    client = WorkerClient(recorder)
    client.start()
    yield client, recorder
    client.close()
    assert processes_with_marker(marker) == [], "the worker left processes behind"
