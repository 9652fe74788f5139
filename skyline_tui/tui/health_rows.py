"""The Health pane's rows, computed from a report without Textual (and without torch).

Each watched module with its share of the iteration's run time (from the breakdown's module tree, when
there is one) beside its health: the main metric's series for a sparkline, and its flags.  Flagged modules
come first, the costliest first among equals: an expensive layer that is not learning tops the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Container, Optional, Sequence

from skyline_tui.comparison.changes import RunComparison
from skyline_tui.report import Breakdown, Health

MAIN_METRIC = "update_to_weight"
FALLBACK_METRIC = "activation_std"  # modules without weights (activations, pooling)
# A flagged row shows the metric its first flag was raised on: a dead ReLU's share of dead units, not its std.
FLAG_METRICS = {"dead_units": "dead_fraction", "saturated": "saturation", "update_ratio_high": "update_to_weight",
                "update_ratio_low": "update_to_weight", "no_gradient": "grad_norm"}
SHARE_METRICS = frozenset({"dead_fraction", "saturation"})  # fractions: shown as per cent


def row_metric(metrics: Container[str], flags: Sequence[str]) -> Optional[str]:
    """The metric a layer's row shows (its sparkline and last value): its first flag's, else the main one."""
    for metric in [FLAG_METRICS.get(kind) for kind in flags[:1]] + [MAIN_METRIC, FALLBACK_METRIC]:
        if metric is not None and metric in metrics:
            return metric
    return None


@dataclass(frozen=True)
class HealthRow:
    key: str
    module: str  # dotted path ("(root)" for the model itself)
    type: str
    file: Optional[str]
    line: Optional[int]
    share: Optional[float]  # of the profiled iteration, forward + backward; None without a breakdown
    metric: Optional[str]  # the metric the sparkline shows
    series: tuple[float, ...]  # its finite values, in iteration order
    last: Optional[float]
    flags: tuple[str, ...]  # flag kinds
    messages: tuple[str, ...]  # their one-line explanations
    new_flags: tuple[str, ...] = ()  # the kinds (of ``flags``) the baseline run did not raise


def module_shares(breakdown: Optional[Breakdown]) -> dict[str, float]:
    if breakdown is None or breakdown.profiled_iteration_ms <= 0:
        return {}
    total = breakdown.profiled_iteration_ms
    return {m.path: (m.forward_ms + m.backward_ms) / total for m in breakdown.modules}


def health_rows(health: Health, breakdown: Optional[Breakdown] = None,
                comparison: Optional[RunComparison] = None) -> list[HealthRow]:
    """``comparison`` (the history's change against the baseline run) marks the flags that are new."""
    shares = module_shares(breakdown)
    rows = []
    for order, module in enumerate(health.modules):
        metric = row_metric(module.metrics, [f.kind for f in module.flags])
        series = module.metrics[metric] if metric is not None else None
        rows.append((order, HealthRow(
            key=module.module or "(root)", module=module.module or "(root)", type=module.type, file=module.file,
            line=module.line, share=shares.get(module.module), metric=metric,
            series=tuple(v for v in series.series if v is not None) if series else (),
            last=series.last if series else None, flags=tuple(f.kind for f in module.flags),
            messages=tuple(f.message for f in module.flags),
            new_flags=tuple(sorted(comparison.new_flags(module.module))) if comparison else ())))
    rows.sort(key=lambda item: (not item[1].flags, -(item[1].share or 0.0), item[0]))
    return [row for _, row in rows]


def non_finite_banner(health: Health) -> Optional[str]:
    found = health.non_finite
    if found is None:
        return None
    where = f"{found.file}:{found.line}" if found.file and found.line else "an unknown line"
    module = f" in {found.module or '(root)'}" if found.module is not None else ""
    return f"NaN/Inf first at {where}{module} ({found.phase}, iteration {found.iteration}): {found.message}"
