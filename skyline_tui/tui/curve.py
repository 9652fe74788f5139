"""A whole series in bounded memory, for the live run's curves (the loss, each tracked metric): at most
``CURVE_POINTS`` points, neighbours averaged as the series grows.  Pure; no Textual, no torch."""

from __future__ import annotations

from dataclasses import dataclass, replace

CURVE_POINTS = 256


@dataclass(frozen=True)
class Curve:
    """A whole series in at most ``CURVE_POINTS`` points: each point the mean of ``bucket`` consecutive
    values, the last bucket filling (``pending_sum`` over ``pending_count`` values)."""

    points: tuple[float, ...] = ()
    bucket: int = 1
    pending_sum: float = 0.0
    pending_count: int = 0

    @property
    def values(self) -> tuple[float, ...]:
        if self.pending_count:
            return (*self.points, self.pending_sum / self.pending_count)
        return self.points


def curve_add(curve: Curve, value: float) -> Curve:
    total, count = curve.pending_sum + value, curve.pending_count + 1
    if count < curve.bucket:
        return replace(curve, pending_sum=total, pending_count=count)
    points, bucket = (*curve.points, total / count), curve.bucket
    if len(points) >= CURVE_POINTS:  # full: halve the resolution (pairs of equal buckets average exactly)
        points = tuple((points[i] + points[i + 1]) / 2 for i in range(0, len(points) - 1, 2))
        bucket *= 2
    return Curve(points, bucket)
