"""What a run stopped by its timeout suggests (presentation.timeout_hint): a hang, unless the throughput it measured
explains the time.  The wiring through the real worker is in tests/cli/test_reliability.py (a fast model that
hangs above its batch size still reads "an infinite loop?")."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from skyline_tui.presentation import timeout_hint
from skyline_tui.report import Report

from ..history_support import make_report


def test_a_slow_iteration_is_named_with_its_batch_size_and_the_predictions_way_out():
    # DeepView's transformer example on 2 CPU cores: 4,703.7 ms an iteration at 64 met the 300 s timeout in the
    # predictions (4.7 s, rounded by hand).
    slow = make_report(Path("/p"), iteration_ms=4703.7, batch_size=64)
    assert timeout_hint(slow, "predictions") == ("an iteration took 4.7 s at batch size 64: raise --timeout, or "
                                                 "--no-predictions (they measure larger batch sizes too)")
    assert timeout_hint(slow, "health") == "an iteration took 4.7 s at batch size 64: raise --timeout"


def test_a_fast_iteration_or_none_measured_still_suggests_a_hang():
    hang = "an infinite loop? (raise --timeout for big models)"
    assert timeout_hint(make_report(Path("/p"), iteration_ms=999.0), "predictions") == hang
    assert timeout_hint(dataclasses.replace(make_report(Path("/p")), throughput=None), "throughput") == hang
    assert timeout_hint(Report(entry_point="e.py", project_root=""), "load") == hang
