"""How a report is read out to a person: the thresholds past which a measurement is the machine's rather than
the code's, and the words the command line, the history and sweep tables and the app say about it.

``report.py`` holds the data; this module judges it and words it, once, for every front end: the CLI's
warnings (``machine_warnings``), the history and sweep tables' notes (``machine_notes``) and the app's
throughput pane (``machine_cautions``, which the pane lays out in its own short words).  Torch-free and
textual-free, like the schema: every process imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from skyline_tui.report import BatchSample, Breakdown, Predictions, Report, Throughput

CONTENDED = 0.25  # cpu_contention from which the CLI and the app warn that the times are inflated
FAULTING = 0.1  # the share of the iteration spent on page faults from which the CLI and the app name it...
FAULTING_MIN = 256  # ...when there are at least this many an iteration (the tiny test model takes ~9 in 0.1 ms)
# What the warnings suggest (bytes): glibc then keeps this much freed memory instead of returning it, and
# the bundled samples took no faults in steady state (lstm at 32: 3,622 faults and 11.2 ms, then 9 and 5.0 ms).
STEADY_MALLOC_TOP_PAD = 512 << 20
STEADY_ALLOCATOR = f"MALLOC_TOP_PAD_={STEADY_MALLOC_TOP_PAD} in the environment (glibc), or jemalloc or tcmalloc"


def breakdown_tag(breakdown: Optional[Breakdown]) -> Optional[str]:
    """The app's breakdown pane title's word for its note (a torch.compile'd model, the only one so far; the
    report carries it whole)."""
    return "torch.compile: one block" if breakdown is not None and breakdown.notes else None


def fault_share(measured: Throughput | BatchSample) -> float:
    """The share of the iteration (the throughput's, or a predictions point's) spent faulting; 0 when unknown."""
    fault_ms, iteration_ms = measured.page_fault_ms, measured.iteration_ms
    return fault_ms / iteration_ms if fault_ms is not None and iteration_ms > 0 else 0.0


def faulting(measured: Optional[Throughput | BatchSample]) -> bool:
    """Whether the iteration spent ``FAULTING`` of its time or more faulting in memory from the system (and
    took at least ``FAULTING_MIN`` faults)."""
    faults = measured.page_faults_per_iteration if measured is not None else None
    return measured is not None and faults is not None and faults >= FAULTING_MIN and fault_share(measured) >= FAULTING


def faulting_samples(predictions: Optional[Predictions], besides: Optional[int] = None) -> list[BatchSample]:
    """The predictions' points that spent ``FAULTING`` of their time faulting (``faulting``), by batch size,
    but the one at ``besides`` (the profiled batch: its throughput says it already)."""
    if predictions is None:
        return []
    return [s for s in predictions.samples if faulting(s) and s.batch_size != besides]


def contended(throughput: Optional[Throughput]) -> bool:
    """Whether other processes competed for the CPU enough (``CONTENDED``) to inflate the measured times."""
    share = throughput.cpu_contention if throughput is not None else None
    return share is not None and share >= CONTENDED


@dataclass(frozen=True)
class MachineCautions:
    """Why a run's times may be the machine's rather than the code's, as every front end names it."""

    busy_cpu: Optional[float] = None  # the throughput's cpu_contention, when it is ``contended``
    faulting: Optional[Throughput] = None  # the throughput, when its iterations were ``faulting``
    # The predictions' points that were (``faulting_samples``): the predictions carry the allocator's cost there.
    faulting_points: tuple[BatchSample, ...] = ()
    worst_point: Optional[BatchSample] = None  # of those, the one with the largest ``fault_share``


def machine_cautions(throughput: Optional[Throughput], predictions: Optional[Predictions] = None,
                     batch_size: Optional[int] = None) -> MachineCautions:
    """The cautions on a report's throughput and predictions; ``batch_size`` is the profiled batch (its point
    repeats the throughput)."""
    points = tuple(faulting_samples(predictions, besides=batch_size))
    return MachineCautions(
        busy_cpu=throughput.cpu_contention if throughput is not None and contended(throughput) else None,
        faulting=throughput if throughput is not None and faulting(throughput) else None,
        faulting_points=points,
        worst_point=max(points, key=fault_share) if points else None,
    )


def machine_notes(throughput: Optional[Throughput]) -> list[str]:
    """Short notes on why a run's times may be the machine's rather than the code's (``history``, sweeps)."""
    cautions = machine_cautions(throughput)
    notes = [f"busy CPU {cautions.busy_cpu:.0%}"] if cautions.busy_cpu is not None else []
    if cautions.faulting is not None:
        notes.append(f"page faults ≈ {cautions.faulting.page_fault_ms or 0.0:.1f} ms")
    return notes


def machine_warnings(report: Report) -> list[str]:
    """The command line's warnings after a profile: a busy CPU, the profiled batch's iterations spending a tenth
    of their time on page faults, and other batch sizes' doing so (the predictions then carry the allocator's
    cost)."""
    cautions = machine_cautions(report.throughput, report.predictions, report.batch_size)
    lines = []
    if cautions.busy_cpu is not None:
        lines.append(f"skyline-tui: warning: other tasks waited for a CPU during {cautions.busy_cpu:.0%} of the "
                     "throughput measurement: the machine was busy and the times are inflated; profile on a quiet "
                     "machine")
    throughput = cautions.faulting
    if throughput is not None:
        lines.append(
            f"skyline-tui: warning: each measured iteration took {throughput.page_faults_per_iteration or 0.0:,.0f} "
            f"page faults, about {throughput.page_fault_ms or 0.0:.1f} ms of its {throughput.iteration_ms:.1f} ms: "
            "the allocator gives freed memory back to the system and faults it in again, and whether it does "
            "depends on what ran before (CPU times and the batch-size predictions then vary from run to run); "
            f"{STEADY_ALLOCATOR}, keeps it")
    if cautions.faulting_points:
        each = ", ".join(f"{s.batch_size} ({s.page_fault_ms or 0.0:.1f} of {s.iteration_ms:.1f} ms)"
                         for s in cautions.faulting_points)
        lines.append(f"skyline-tui: warning: page faults took a tenth or more of each iteration at batch size {each}: "
                     f"the batch-size predictions include that time; {STEADY_ALLOCATOR}, keeps it out")
    return lines


SLOW_ITERATION_MS = 1000.0  # an iteration this slow explains a timed-out run without a hang


def timeout_hint(report: Report, phase: str) -> str:
    """What a run stopped by its timeout (in ``phase``) suggests, after where it was stopped: a hang, unless the
    throughput measured iterations slow enough to explain the time (DeepView's transformer example on CPU, 4.7 s
    an iteration, met the default 300 s in the predictions, which measure past their budget until a fit has 3
    batch sizes)."""
    throughput = report.throughput
    if throughput is None or throughput.iteration_ms < SLOW_ITERATION_MS:
        return "an infinite loop? (raise --timeout for big models)"
    seconds = throughput.iteration_ms / 1000
    hint = f"an iteration took {seconds:.1f} s at batch size {report.batch_size}: raise --timeout"
    if phase == "predictions":
        hint += ", or --no-predictions (they measure larger batch sizes too)"
    return hint
