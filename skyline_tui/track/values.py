"""What ``track.log`` accepts as a metric's value, and as a step: numbers, nothing else, checked cheaply."""

from __future__ import annotations

import math
from typing import Any, Optional

# The types that need no conversion (the common case: ``loss.item()`` gives a float).
_PLAIN = (float, int)

Record = tuple[int, str, float]  # one tracked value: (step, metric name, value)


def as_number(value: Any) -> Optional[float]:
    """``value`` as a float, or None when it is not a number.  ``bool`` counts (0/1); so does anything
    ``float()`` takes but text (a NumPy scalar, a one-element tensor: on a GPU, converting that one waits
    for the device, as ``.item()`` does).  NaN and infinities are kept: a loss that diverged is a result."""
    if type(value) in _PLAIN:
        return float(value)
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError, OverflowError):  # a tensor of several values: RuntimeError
        return None


def as_step(step: Any) -> Optional[int]:
    """A step given by the script: a non-negative integer (an integral float, or a one-element integer
    tensor, too), else None."""
    if type(step) is int:
        return step if step >= 0 else None
    if isinstance(step, (bool, str, bytes)):
        return None
    try:
        number = float(step)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        return None
    if not math.isfinite(number) or number < 0 or number != int(number):
        return None
    return int(number)


def describe(value: Any) -> str:
    """A value named in a warning: its type and a short repr."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"
