"""What changed between two runs: throughput, iteration time, peak memory, every line and module, and the
training-health flags that appeared or went away (``skyline-tui diff``, and the app's Δ through
:mod:`skyline_tui.comparison.changes`).

A line keeps its identity when lines are inserted or deleted above it: lines are matched by file and code
text first (the nearest line number wins between repeated code), and an edited line is matched to the one
that sits where it did once the shift of the matched lines around it is taken into account.

"Same" is :mod:`skyline_tui.comparison.rule`'s (the README has it): a time change is real only when it exceeds
``noise_fraction × the larger of the two times`` and at least :data:`MIN_NOISE_MS`, where ``noise_fraction`` is
the two runs' noise (their iteration times' spreads, with the drift between processes when the store knows
it) as a share of the larger iteration, and at least :data:`MIN_NOISE_FRACTION`.  Lines and modules are
judged by the same share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from skyline_tui.comparison.drift import describe
from skyline_tui.comparison.rule import (
    MIN_NOISE_FRACTION,
    MIN_NOISE_MS,
    PEAK_NOISE_FRACTION,
    UNKNOWN,
    Drift,
    figure_change,
    relative_noise,
    verdict,
)
from skyline_tui.presentation import FAULTING, STEADY_MALLOC_TOP_PAD, contended
from skyline_tui.report import Health, LineTiming, ModuleTiming, Report


@dataclass(frozen=True)
class RunLabel:
    """Which run a side of the diff is: a run id in the store, or a report file."""

    source: str  # "run 12" or the JSON file's path
    entry_point: str
    batch_size: int | None
    created_at: str | None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "entry_point": self.entry_point,
                "batch_size": self.batch_size, "created_at": self.created_at}


@dataclass(frozen=True)
class LineChange:
    file: str
    line: int  # in the later run (in the earlier one for a line that is gone)
    code: str
    before_ms: float | None
    after_ms: float | None
    delta_ms: float  # after minus before; a new line counts from 0, a gone line down to 0
    verdict: str  # "slower" | "faster" | "same" | "unknown" (within an unknown drift) | "new" | "gone"
    before_line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "code": self.code, "before_ms": self.before_ms,
                "after_ms": self.after_ms, "delta_ms": self.delta_ms, "verdict": self.verdict}


@dataclass(frozen=True)
class ModuleChange:
    module: str
    before_ms: float | None
    after_ms: float | None
    delta_ms: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "before_ms": self.before_ms, "after_ms": self.after_ms,
                "delta_ms": self.delta_ms, "verdict": self.verdict}


@dataclass(frozen=True)
class FlagChange:
    """A health flag (``dead_units`` on ``fc2``, say) that one run raised and the other did not."""

    module: str  # dotted path, "" for the model itself
    kind: str
    change: str  # "appeared" | "gone"
    message: str  # its explanation, from the run that raised it

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "kind": self.kind, "change": self.change}


@dataclass(frozen=True)
class Diff:
    a: RunLabel
    b: RunLabel
    noise_fraction: float
    throughput: dict[str, Any]  # samples/s: before, after, delta, delta_percent, verdict (faster/slower/same)
    iteration: dict[str, Any]  # iteration ms: before, after, delta, delta_percent, verdict (slower/faster/same)
    peak: dict[str, Any]  # bytes: before, after, delta, delta_percent, verdict (more/less/same)
    lines: tuple[LineChange, ...] = field(default=())
    modules: tuple[ModuleChange, ...] = field(default=())
    flags: tuple[FlagChange, ...] = field(default=())
    cautions: tuple[str, ...] = field(default=())  # why a time change may not be the code's (see cautions())

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "noise_fraction": self.noise_fraction,
                "throughput": self.throughput, "iteration": self.iteration, "peak": self.peak,
                "lines": [c.to_dict() for c in self.lines], "modules": [c.to_dict() for c in self.modules],
                "flags": [c.to_dict() for c in self.flags], "cautions": list(self.cautions)}


def label(report: Report, source: str, run_id: int | None = None) -> RunLabel:
    return RunLabel(source=source, entry_point=report.entry_point, batch_size=report.batch_size,
                    created_at=report.created_at, id=run_id)


def noise_fraction(a: Report, b: Report, drift: Drift | None = None) -> float:
    """The two runs' noise as a share of the larger iteration time (see the module docstring)."""
    return relative_noise([(t.iteration_ms, t.iteration_ms_stdev) for t in (a.throughput, b.throughput)
                           if t is not None], drift, MIN_NOISE_FRACTION)


def time_verdict(before: float, after: float, fraction: float, drift: Drift | None = None) -> str:
    band = max(MIN_NOISE_MS, fraction * max(abs(before), abs(after)))
    return verdict(before, after, band, drift, up="slower", down="faster")


def diff_reports(a: Report, b: Report, label_a: RunLabel | None = None, label_b: RunLabel | None = None,
                 drift: Drift | None = None) -> Diff:
    """``a`` is the earlier ("before") run, ``b`` the later ("after") one.  ``drift``: between the two runs'
    processes, from the store (:func:`skyline_tui.comparison.drift.drift_between`); None when no store was
    asked (two report files): then the runs' own spreads and the 5 % floor alone."""
    fraction = noise_fraction(a, b, drift)
    ta, tb = a.throughput, b.throughput
    throughput = figure_change(ta.samples_per_second if ta else None, tb.samples_per_second if tb else None,
                               fraction, drift, up="faster", down="slower")
    iteration = figure_change(ta.iteration_ms if ta else None, tb.iteration_ms if tb else None, fraction, drift,
                              up="slower", down="faster")
    # Memory does not drift as time does; runs of the same source and config still differ only by noise.
    memory_drift = None if drift is None else Drift(sigma=0.0, same_source=drift.same_source)
    peak = figure_change(a.memory.peak_bytes if a.memory else None, b.memory.peak_bytes if b.memory else None,
                         PEAK_NOISE_FRACTION, memory_drift, up="more", down="less")
    lines: tuple[LineChange, ...] = ()
    modules: tuple[ModuleChange, ...] = ()
    if a.breakdown is not None and b.breakdown is not None:  # else every line would read "new" or "gone"
        lines = diff_lines(a.breakdown.lines, b.breakdown.lines, fraction, drift)
        modules = diff_modules(a.breakdown.modules, b.breakdown.modules, fraction, drift)
    facts = (throughput, iteration, peak)
    unknown = UNKNOWN in (*(fact["verdict"] for fact in facts), *(c.verdict for c in lines),
                          *(c.verdict for c in modules))
    return Diff(a=label_a or label(a, "a"), b=label_b or label(b, "b"), noise_fraction=fraction,
                throughput=throughput, iteration=iteration, peak=peak, lines=lines, modules=modules,
                flags=diff_flags(a.health, b.health),
                cautions=drift_cautions(iteration, drift, unknown) + cautions(a, b, fraction, drift))


def drift_cautions(iteration: dict[str, Any], drift: Drift | None, unknown: bool) -> tuple[str, ...]:
    """What the drift between the runs' processes says about the verdicts: nothing when no store was asked."""
    if drift is None:
        return ()
    if drift.same_source:
        change = (f" (iteration time {iteration['delta_percent']:+.1f} %)"
                  if iteration.get("delta_percent") is not None else "")
        return (f"A and B ran the same source and config on this machine: their difference{change} is this "
                "machine's run-to-run noise, not a change in the code",)
    if unknown:
        return (f"{describe(drift)}; profile unchanged code twice to learn it",)
    return ()


def cautions(a: Report, b: Report, fraction: float, drift: Drift | None = None) -> tuple[str, ...]:
    """Why a time change between ``a`` (A) and ``b`` (B) may not be the code's: either run measured on a busy
    CPU, the allocator faulting memory in during one run's iterations and not the other's (CPU times then
    differ by up to 2x with no change to the code: profiler/faults.py), or a throughput that changed while the
    breakdown's profiled iteration did not (two lstm runs of one file: 9.28 and 15.27 ms, 6.58 and 6.26 ms),
    judged by the diff's noise ``fraction``."""
    out = []
    for name, report in (("A", a), ("B", b)):
        if report.throughput is not None and contended(report.throughput):
            out.append(f"{name} was measured on a busy CPU (other tasks waited for one during "
                       f"{report.throughput.cpu_contention or 0.0:.0%} of its throughput measurement): its times are "
                       "inflated")
    ta, tb = a.throughput, b.throughput
    if ta is not None and tb is not None and ta.page_fault_ms is not None and tb.page_fault_ms is not None and \
            abs(ta.page_fault_ms - tb.page_fault_ms) >= FAULTING * max(ta.iteration_ms, tb.iteration_ms):
        out.append(f"page faults took about {ta.page_fault_ms:.1f} ms of A's iteration and {tb.page_fault_ms:.1f} ms "
                   "of B's: the allocator gave memory back and faulted it in again in one run more than the other, "
                   f"so part of the time change is not the code's (MALLOC_TOP_PAD_={STEADY_MALLOC_TOP_PAD} keeps "
                   "it steady)")
    pa, pb = a.breakdown, b.breakdown
    # Each run timed its iteration twice: the throughput's rounds, and the breakdown's profiled iterations.
    if ta is not None and tb is not None and pa is not None and pb is not None and \
            time_verdict(ta.iteration_ms, tb.iteration_ms, fraction, drift) in ("slower", "faster") and \
            time_verdict(pa.profiled_iteration_ms, pb.profiled_iteration_ms, fraction, drift) == "same":
        out.append(f"the iteration went from {ta.iteration_ms:.2f} to {tb.iteration_ms:.2f} ms but the breakdown's "
                   f"profiled iteration did not ({pa.profiled_iteration_ms:.2f} and {pb.profiled_iteration_ms:.2f} "
                   "ms): the runs' two timings disagree, so the change may be what one throughput measurement met "
                   "(the machine, the allocator) rather than the code; profile again to tell")
    return tuple(out)


def match_lines(before: Sequence[LineTiming], after: Sequence[LineTiming]
                ) -> list[tuple[LineTiming | None, LineTiming | None]]:
    """Pairs (before, after); a line only in one run pairs with None."""
    pairs: list[tuple[LineTiming | None, LineTiming | None]] = []
    used_before: set[int] = set()
    used_after: set[int] = set()
    by_text_before: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_text_after: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, ln in enumerate(before):
        by_text_before[(ln.file, ln.code.strip())].append(i)
    for j, ln in enumerate(after):
        by_text_after[(ln.file, ln.code.strip())].append(j)
    # 1. Same file and code text; between repeats of one text, the nearest line numbers pair first.
    for key, olds in by_text_before.items():
        candidates = sorted((abs(before[i].line - after[j].line), i, j)
                            for i in olds for j in by_text_after.get(key, ()))
        for _distance, i, j in candidates:
            if i not in used_before and j not in used_after:
                used_before.add(i)
                used_after.add(j)
                pairs.append((before[i], after[j]))
    # 2. An edited line: where the nearest text-matched line's shift puts it, an unmatched line of the same file.
    shifts: dict[str, list[tuple[int, int]]] = defaultdict(list)  # file -> (before line, after - before)
    for old, new in pairs:
        assert old is not None and new is not None
        shifts[old.file].append((old.line, new.line - old.line))
    free_after = {(after[j].file, after[j].line): j for j in range(len(after)) if j not in used_after}
    for i, old in enumerate(before):
        if i in used_before:
            continue
        near = min(shifts.get(old.file, []), key=lambda s: abs(s[0] - old.line), default=(old.line, 0))
        edited = free_after.pop((old.file, old.line + near[1]), None)
        if edited is not None:
            used_before.add(i)
            used_after.add(edited)
            pairs.append((old, after[edited]))
    pairs += [(before[i], None) for i in range(len(before)) if i not in used_before]
    pairs += [(None, after[j]) for j in range(len(after)) if j not in used_after]
    return pairs


def diff_lines(before: Sequence[LineTiming], after: Sequence[LineTiming], fraction: float,
               drift: Drift | None = None) -> tuple[LineChange, ...]:
    changes = []
    for old, new in match_lines(before, after):
        if new is None:
            assert old is not None
            changes.append(LineChange(old.file, old.line, old.code, old.total_ms, None, -old.total_ms, "gone",
                                      before_line=old.line))
        elif old is None:
            changes.append(LineChange(new.file, new.line, new.code, None, new.total_ms, new.total_ms, "new"))
        else:
            changes.append(LineChange(new.file, new.line, new.code, old.total_ms, new.total_ms,
                                      new.total_ms - old.total_ms,
                                      time_verdict(old.total_ms, new.total_ms, fraction, drift),
                                      before_line=old.line))
    return tuple(sorted(changes, key=lambda c: (-abs(c.delta_ms), c.file, c.line)))


def diff_modules(before: Sequence[ModuleTiming], after: Sequence[ModuleTiming], fraction: float,
                 drift: Drift | None = None) -> tuple[ModuleChange, ...]:
    old_by_key = {(m.path, m.type): m for m in before}
    new_by_key = {(m.path, m.type): m for m in after}
    changes = []
    for key in [*old_by_key, *(k for k in new_by_key if k not in old_by_key)]:
        old, new = old_by_key.get(key), new_by_key.get(key)
        name = key[0]  # "" is the whole model, as in the report
        if new is None:
            assert old is not None
            total = old.forward_ms + old.backward_ms
            changes.append(ModuleChange(name, total, None, -total, "gone"))
        elif old is None:
            total = new.forward_ms + new.backward_ms
            changes.append(ModuleChange(name, None, total, total, "new"))
        else:
            before_ms, after_ms = old.forward_ms + old.backward_ms, new.forward_ms + new.backward_ms
            changes.append(ModuleChange(name, before_ms, after_ms, after_ms - before_ms,
                                        time_verdict(before_ms, after_ms, fraction, drift)))
    return tuple(changes)  # pre-order, as the report lists them: parents before children


def diff_flags(before: Health | None, after: Health | None) -> tuple[FlagChange, ...]:
    """The flags raised in one run and not the other, matched by module path and kind: those that
    appeared (in the later run's module order), then those gone.  Empty unless both runs measured health
    (else every flag would read "appeared" or "gone")."""
    if before is None or after is None:
        return ()
    old = {(m.module, f.kind): f.message for m in before.modules for f in m.flags}
    new = {(m.module, f.kind): f.message for m in after.modules for f in m.flags}
    return (*(FlagChange(module, kind, "appeared", message) for (module, kind), message in new.items()
              if (module, kind) not in old),
            *(FlagChange(module, kind, "gone", message) for (module, kind), message in old.items()
              if (module, kind) not in new))
