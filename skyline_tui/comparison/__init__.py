"""Comparing two runs, with one noise rule: ``skyline-tui diff``, the app's Δ, ``--baseline`` and the
batch-size predictions' line-versus-points choice all judge a change here.

- :mod:`~skyline_tui.comparison.rule` — the rule: when two measurements differ by more than their noise
  (each run's own spread plus the drift between processes), and ``unknown`` where that drift is not known;
- :mod:`~skyline_tui.comparison.drift` — the drift, learned from repeated runs of identical source in the
  history store (rows in, a ``Drift`` out: the store itself stays in ``history/``);
- :mod:`~skyline_tui.comparison.diff` — two reports side by side: totals, lines, modules, health flags;
- :mod:`~skyline_tui.comparison.changes` — the same, keyed for the app's panes.

Torch-free and textual-free: the headless verbs and the UI process import it.
"""

from skyline_tui.comparison.rule import NOISE_SIGMAS, Drift

__all__ = ["NOISE_SIGMAS", "Drift"]
