"""How a recorded run is named beside its numbers, the same in ``skyline-tui history`` and the app's `h` screen."""

from __future__ import annotations

from typing import Any, Optional


def knob_labels(knobs: Optional[dict[str, Any]]) -> list[str]:
    """A sweep trial's knobs as ``name=value``, but the batch size (both tables give it a column of its own)."""
    return [f"{name}={value}" for name, value in (knobs or {}).items() if name != "batch_size"]
