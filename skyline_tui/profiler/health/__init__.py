"""Training health (Ikkuna-style): a publisher hooked into a fresh model sends per-layer activations,
gradients, weights and updates to metrics (built-in and the user's), which become series and flags."""

from skyline_tui.profiler.health.phase import measure_health

__all__ = ["measure_health"]
