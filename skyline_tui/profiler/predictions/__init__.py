"""Batch-size predictions, the torch side: measuring time and peak memory at a few batch sizes around the
profiled one, in the profile's child.

- :mod:`~skyline_tui.profiler.predictions.scaling` — which batch sizes, in what order, within what budget,
  and the fits over them (``measure_predictions``);
- :mod:`~skyline_tui.profiler.predictions.timing` — timing one batch size, and its page faults;
- :mod:`~skyline_tui.profiler.predictions.processes` — on CPU, each batch size in a fresh process of its own;
- :mod:`~skyline_tui.profiler.predictions.capacity` — how much memory a batch may use, and cleaning up after
  an out-of-memory error.

The arithmetic the UI needs too (fits, targets) is torch-free: :mod:`skyline_tui.predictions`.
"""
