"""One profile run: load the entry point, then measure phase by phase, emitting the report as it grows.

Phases run in order of how soon a user wants them: throughput first (the headline number), then the
run-time breakdown, the memory breakdown, training health and the batch-size predictions.  After each phase
``emit`` gets the report so far, so the UI can show the first number long before the run ends.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from typing import Any, Callable, Optional

import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler import entry as entry_mod
from skyline_tui.profiler.predictions.processes import BatchProcesses
from skyline_tui.profiler.predictions.scaling import measure_predictions
from skyline_tui.profiler.breakdown import measure_breakdown
from skyline_tui.profiler.errors import ProfileError, from_exception, is_oom
from skyline_tui.profiler.faults import fault_time
from skyline_tui.profiler.health import measure_health
from skyline_tui.profiler.memory import measure_memory
from skyline_tui.profiler.spans import measure_breakdown_with_trace
from skyline_tui.profiler.timing import ContentionClock, TimingResult, measure_until_stable, warm_up
from skyline_tui.profiler.workload import Workload, device_info, load_workload
from skyline_tui.report import PHASES, Breakdown, ErrorInfo, Report, Throughput

Emit = Callable[[Report, str], None]  # (report so far, phase just finished)
Measure = Callable[[Workload, ProfileConfig, Report], Any]


def measure_throughput(work: Workload, config: ProfileConfig,
                       on_first_number: Optional[Callable[[Throughput], None]] = None) -> Throughput:
    """Warm up, then time rounds until two agree.  ``on_first_number`` gets an unsettled throughput as soon
    as the first round is in (the app shows it while the search goes on)."""
    work.run_user(lambda: warm_up(work.run, work.device, config.warmup_iterations, config.warmup_s), "iteration")
    contention = ContentionClock()
    contention.start()
    on_unsettled = None if on_first_number is None else \
        (lambda result: on_first_number(_throughput(work, result, contention.share())))  # noqa: E731
    result = work.run_user(lambda: measure_until_stable(
        work.run, work.device, round_iterations=config.round_iterations, min_rounds=config.min_rounds,
        tolerance=config.stability_tolerance, budget_s=config.throughput_budget_s, on_unsettled=on_unsettled),
        "iteration")
    throughput = _throughput(work, result, result.stall_share)  # over the rounds the number came from
    if work.device.type != "cpu":
        return throughput  # on a GPU the host's faults overlap the device's work: no share of its time to name
    per_iteration, fault_ms = fault_time(result.faults, result.iterations_run)
    return dataclasses.replace(throughput, page_faults_per_iteration=per_iteration, page_fault_ms=fault_ms)


def _throughput(work: Workload, result: TimingResult, cpu_contention: Optional[float]) -> Throughput:
    return Throughput(samples_per_second=work.batch_size * 1000.0 / result.mean_ms if result.mean_ms > 0 else 0.0,
                      iteration_ms=result.mean_ms, iteration_ms_stdev=result.stdev_ms,
                      iterations_measured=len(result.samples_ms), stable=result.stable,
                      cpu_contention=cpu_contention)


def compile_first_iteration(work: Workload) -> float:
    """torch.compile compiles on the first call: run it once here and report its time apart, so that the
    compile never lands inside samples/s."""
    started = time.perf_counter()
    work.run_user(work.run, "iteration")
    if work.device.type == "cuda":
        torch.cuda.synchronize(work.device)
    return (time.perf_counter() - started) * 1000.0


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def profile(entry: str, root: Optional[str], config: ProfileConfig, emit: Optional[Emit] = None,
            on_phase: Optional[Callable[[str], None]] = None) -> Report:
    """Profile an entry point in this process.  Never raises for a user-side failure: the report's
    ``error`` says what went wrong, and whatever was measured before it is kept.

    ``on_phase(name)`` is called as each phase starts; ``emit(report, name)`` as each one ends.
    """
    emit = emit or (lambda report, phase: None)
    started = on_phase or (lambda phase: None)
    report = Report(entry_point=str(entry), project_root=str(root) if root else "",
                    torch_version=torch.__version__, created_at=_now())
    work: Optional[Workload] = None
    phase = "load"
    started(phase)
    processes: Optional[BatchProcesses] = None
    try:
        ep = entry_mod.load_entry_point(entry, root)
        if config.predictions and not config.compile:
            # Before anything is built: a process that has run a parallel op cannot fork (predictions/processes.py).
            processes = BatchProcesses.start(ep)
        report = report.replace(entry_point=str(ep.path), project_root=str(ep.files.root))
        batch_size = config.batch_size or ep.default_batch_size
        report = report.replace(batch_size=batch_size)
        work = load_workload(ep, batch_size, config)
        report = report.replace(device=device_info(work.device))
        if processes is not None and work.device.type == "cpu":
            work.batch_processes = processes
        elif processes is not None:
            processes.close()  # on a GPU the predictions measure here
        if config.compile:
            report = report.replace(compile_ms=compile_first_iteration(work))
        emit(report, "load")

        phase = "throughput"
        started(phase)
        loaded = report
        first_number = None if not config.provisional_throughput else \
            (lambda throughput: emit(loaded.replace(throughput=throughput), "throughput"))  # noqa: E731
        report = report.replace(throughput=measure_throughput(work, config, first_number))
        emit(report, phase)

        for phase in _optional_phases(config):
            started(phase)
            report = report.replace(**{phase: MEASURES[phase](work, config, report)})
            emit(report, phase)
    except ProfileError as exc:
        report = report.replace(error=exc.info)
    except BaseException as exc:  # noqa: BLE001 - user code can raise anything
        files = work.entry.files if work is not None else None
        if files is not None:
            info = from_exception(exc, files)
        else:
            info = ErrorInfo(kind="oom" if is_oom(exc) else "internal", message=f"{type(exc).__name__}: {exc}")
        report = report.replace(error=info)
    finally:
        if processes is not None:
            processes.close()
    if report.error is not None and report.error.kind == "oom" and phase != "load":
        # Name the phase: the batch ran at first, so this is a later phase's extra memory.
        report = report.replace(error=dataclasses.replace(
            report.error, message=f"{report.error.message} (during {phase})"))
    return report


# How each optional phase (after "load" and "throughput", which always run) fills the report field of its name
# (report.PHASES is the order).
MEASURES: dict[str, Measure] = {
    "breakdown": lambda work, config, report: measure_breakdown_and_trace(work, config),
    "memory": lambda work, config, report: measure_memory(work, config),
    "health": measure_health,
    "predictions": measure_predictions,
}


def measure_breakdown_and_trace(work: Workload, config: ProfileConfig) -> Breakdown:
    """With a trace path, the breakdown's own iterations are recorded as spans (profiler/spans.py)."""
    return measure_breakdown_with_trace(work, config) if config.trace_path else measure_breakdown(work, config)


def _optional_phases(config: ProfileConfig) -> list[str]:
    """The phases after throughput that the config turns on (a bool field of the phase's name)."""
    return [name for name in PHASES[2:] if getattr(config, name)]
