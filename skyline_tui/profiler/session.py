"""One profile run: load the entry point, then measure phase by phase, emitting the report as it grows.

Phases run in order of how soon a user wants them: throughput first (the headline number), then the
run-time breakdown, the memory breakdown and the batch-size predictions.  After each phase ``emit`` gets
the report so far, so the UI can show the first number long before the run ends.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler import entry as entry_mod
from skyline_tui.profiler.entry import EntryPoint
from skyline_tui.profiler.errors import ProfileError, from_exception, is_oom
from skyline_tui.profiler.timing import measure_until_stable, warm_up
from skyline_tui.report import DeviceInfo, ErrorInfo, Report, Throughput

Emit = Callable[[Report, str], None]  # (report so far, phase just finished)
PHASES = ("load", "throughput", "breakdown", "memory", "predictions")


@dataclass
class Workload:
    """Everything a measurement needs: the loaded model, its iteration, and inputs at one batch size."""

    entry: EntryPoint
    model: torch.nn.Module
    iteration: Callable[..., Any]
    batch_size: int
    inputs: tuple[Any, ...]
    device: torch.device
    _inputs_by_batch: dict[int, tuple[Any, ...]] = field(default_factory=dict)

    def run(self) -> Any:
        return self.iteration(*self.inputs)

    def make_inputs(self, batch_size: int) -> tuple[Any, ...]:
        """Inputs at another batch size (through the user's input provider)."""
        if batch_size == self.batch_size:
            return self.inputs
        return entry_mod.make_inputs(self.entry, batch_size)

    def run_user(self, func: Callable[[], Any], what: str) -> Any:
        """Run user code, turning its exceptions into errors that point at the user's frame."""
        try:
            return func()
        except ProfileError:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise ProfileError(from_exception(exc, self.entry.files, function=what)) from None


def detect_device(model: torch.nn.Module, inputs: tuple[Any, ...]) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    for item in inputs:
        if isinstance(item, torch.Tensor):
            return item.device
    return torch.device("cpu")


def device_info(device: torch.device) -> DeviceInfo:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return DeviceInfo(type="cuda", name=props.name, memory_capacity_bytes=int(props.total_memory))
    return DeviceInfo(type=device.type, name=_cpu_name(), memory_capacity_bytes=_system_memory())


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "CPU"


def _system_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def load_workload(ep: EntryPoint, batch_size: int) -> Workload:
    model = entry_mod.check_model(ep, entry_mod.call_provider(ep, ep.model_provider))
    iteration = entry_mod.check_iteration(ep, entry_mod.call_provider(ep, ep.iteration_provider, model))
    inputs = entry_mod.make_inputs(ep, batch_size)
    entry_mod.check_arity(ep, iteration, inputs)
    return Workload(entry=ep, model=model, iteration=iteration, batch_size=batch_size, inputs=inputs,
                    device=detect_device(model, inputs))


def measure_throughput(work: Workload, config: ProfileConfig) -> Throughput:
    work.run_user(lambda: warm_up(work.run, work.device, config.warmup_iterations, config.warmup_s), "iteration")
    result = work.run_user(lambda: measure_until_stable(
        work.run, work.device, round_iterations=config.round_iterations, min_rounds=config.min_rounds,
        tolerance=config.stability_tolerance, budget_s=config.throughput_budget_s), "iteration")
    return Throughput(samples_per_second=work.batch_size * 1000.0 / result.mean_ms if result.mean_ms > 0 else 0.0,
                      iteration_ms=result.mean_ms, iteration_ms_stdev=result.stdev_ms,
                      iterations_measured=len(result.samples_ms), stable=result.stable)


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
    try:
        ep = entry_mod.load_entry_point(entry, root)
        report = report.replace(entry_point=str(ep.path), project_root=str(ep.files.root))
        batch_size = config.batch_size or ep.default_batch_size
        report = report.replace(batch_size=batch_size)
        work = load_workload(ep, batch_size)
        report = report.replace(device=device_info(work.device))
        emit(report, "load")

        phase = "throughput"
        started(phase)
        report = report.replace(throughput=measure_throughput(work, config))
        emit(report, phase)

        for phase, measure in _optional_phases(config):
            started(phase)
            report = report.replace(**{phase: measure(work, report)})
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
    if report.error is not None and report.error.kind == "oom" and phase != "load":
        # Name the phase: the batch ran at first, so this is a later phase's extra memory.
        report = report.replace(error=dataclasses.replace(
            report.error, message=f"{report.error.message} (during {phase})"))
    return report


def _optional_phases(config: ProfileConfig) -> list[tuple[str, Callable[[Workload, Report], Any]]]:
    """The phases after throughput, in the order a user wants them; each fills the report field of its
    name.  Imported here: the predictions module imports Workload from this one."""
    from skyline_tui.profiler.breakdown import measure_breakdown
    from skyline_tui.profiler.memory import measure_memory
    from skyline_tui.profiler.predictions import measure_predictions

    table: list[tuple[str, bool, Callable[[Workload, Report], Any]]] = [
        ("breakdown", config.breakdown, lambda work, report: measure_breakdown(work, config)),
        ("memory", config.memory, lambda work, report: measure_memory(work, config)),
        ("predictions", config.predictions, lambda work, report: measure_predictions(work, config, report)),
    ]
    return [(name, measure) for name, enabled, measure in table if enabled]
