"""Batch-size predictions, the torch-free side: what a report's measured batch sizes and fits say at a batch
size never measured.

- :mod:`~skyline_tui.predictions.fits` — the arithmetic: least-squares lines, the line-versus-points choice
  (by :mod:`skyline_tui.comparison.rule`), the predicted time, peak, throughput and largest batch that fits;
- :mod:`~skyline_tui.predictions.targets` — the app's target batch size: measured or predicted numbers, and
  the steps the keys move by.

The measuring (torch, in the profile's child) is :mod:`skyline_tui.profiler.predictions`; the schema is
``report.Predictions``; the control that shows a target is ``tui/views/batch.py``.  Torch-free and
textual-free: the UI process imports it.
"""
