"""The one report schema: frozen dataclasses that cross every boundary.

The worker builds a :class:`Report`, sends it as JSON over its private channel, the CLI writes the same
JSON with ``--json`` and the views render the same dataclasses.  Nothing here imports torch or textual.

Conventions: times are milliseconds (``*_ms``), sizes are bytes (``*_bytes``), files are paths relative
to the project root (POSIX separators), lines are 1-based.  ``None`` means "not measured / unknown".
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from skyline_tui.dataclass_json import ReportFormatError, from_dict, to_dict

__all__ = ["PHASES", "SECTIONS", "SCHEMA_VERSION", "Report", "ReportFormatError", "from_dict", "to_dict"]

SCHEMA_VERSION = 1

# The phases of a profile run, in the order they run.  Every phase after "load" fills the report field of
# its name (and, from "breakdown" on, has a ProfileConfig switch of that name).  The profiler, the worker,
# the status bar and the app's state all take the list from here, so a new phase is added in one place.
PHASES = ("load", "throughput", "breakdown", "memory", "health", "predictions")
SECTIONS = PHASES[1:]  # the report fields the phases fill

# Error kinds (ErrorInfo.kind).  Kept as plain strings so the JSON stays readable.
ERROR_KINDS = (
    "file",  # entry point missing, a directory, unreadable, not UTF-8
    "syntax",  # SyntaxError in project code
    "entry_point",  # a provider is missing or has the wrong signature / return type
    "user_code",  # an exception raised by the user's code
    "oom",  # out of memory at the profiled batch size
    "timeout",  # the run exceeded its time limit
    "crash",  # the worker died from a signal (segfault, kill)
    "exit",  # user code called sys.exit / os._exit
    "cancelled",  # superseded by a newer run
    "internal",  # a bug in skyline-tui itself
)


@dataclass(frozen=True)
class ToolInfo:
    name: str
    version: str


@dataclass(frozen=True)
class DeviceInfo:
    type: str  # "cpu" | "cuda"
    name: str
    memory_capacity_bytes: Optional[int]  # the device's total memory (see MemoryBreakdown.capacity_bytes)
    # CUDA: the device's UUID in hex groups, without NVML's "GPU-"/"MIG-" prefix; a status bar finds the same
    # GPU in NVML by it, trying both prefixes (NVML counts in PCI order and ignores CUDA_VISIBLE_DEVICES).
    uuid: Optional[str] = None


@dataclass(frozen=True)
class Throughput:
    samples_per_second: float
    iteration_ms: float  # mean of the measured (un-instrumented) iterations
    iteration_ms_stdev: float
    iterations_measured: int
    # Two consecutive rounds agreed within the tolerance before the budget ran out.  False: the number
    # is the budget's last word, not a settled one (a busy machine, or a model still warming up).
    stable: bool = True
    # The share of the wall time of the rounds the time came from during which some runnable task on this
    # machine waited for a CPU (Linux pressure stall information, /proc/pressure/cpu); null where the kernel
    # has none.  Rounds set aside because the run's own threads waited (profiler/timing.py) are not in it.
    # High means other processes competed for the cores and the times are inflated: a 1.5 ms MLP
    # iteration measured 186 ms beside two busy processes on 2 cores, with this at 0.81 (quiet: 0.01).
    cpu_contention: Optional[float] = None
    # Minor page faults per measured iteration (every thread of the run), and their estimated time: the
    # faults times what one fault costs this process, measured on fresh pages (profiler/faults.py).  High
    # when the allocator gives memory back to the system and faults it in again every iteration: the lstm
    # sample at 32 ran 10.1 ms with 3,789 faults an iteration, 5.8 ms with none.  Null where not counted
    # (on CUDA devices: the host's faults overlap the GPU's work).
    page_faults_per_iteration: Optional[float] = None
    page_fault_ms: Optional[float] = None


@dataclass(frozen=True)
class ErrorInfo:
    kind: str  # one of ERROR_KINDS
    message: str  # one line a person can act on
    file: Optional[str] = None  # the user's file the error points at (relative to the root if inside it)
    line: Optional[int] = None
    traceback: str = ""  # the user's frames only, formatted
    function: Optional[str] = None  # e.g. "skyline_input_provider"


@dataclass(frozen=True)
class ModuleTiming:
    """One node of the module tree.  ``path`` is the dotted name from ``named_modules`` ("" = root)."""

    path: str
    type: str
    forward_ms: float  # total, children included
    backward_ms: float  # total, children included
    self_forward_ms: float
    self_backward_ms: float
    file: Optional[str] = None  # project line where this module is called
    line: Optional[int] = None


@dataclass(frozen=True)
class LineTiming:
    """Work launched by one project source line; backward is charged to the forward line."""

    file: str
    line: int
    code: str
    forward_ms: float
    backward_ms: float

    @property
    def total_ms(self) -> float:
        return self.forward_ms + self.backward_ms


@dataclass(frozen=True)
class Breakdown:
    profiled_iteration_ms: float  # one iteration as timed under instrumentation
    optimizer_ms: float
    other_ms: float  # profiled_iteration_ms minus everything attributed (never negative)
    iterations_profiled: int
    lines: tuple[LineTiming, ...] = ()  # sorted by total_ms, descending
    modules: tuple[ModuleTiming, ...] = ()  # pre-order (parents before children)
    notes: tuple[str, ...] = ()  # what the rows cannot show, and why (a torch.compile'd model's inside)


@dataclass(frozen=True)
class MemoryEntry:
    kind: str  # "activations" | "weights"
    bytes: int
    module: Optional[str] = None  # module path, when the bytes belong to one
    file: Optional[str] = None
    line: Optional[int] = None


@dataclass(frozen=True)
class MemoryBreakdown:
    peak_bytes: int
    peak_source: str  # how peak_bytes was obtained, e.g. "torch.cuda.max_memory_allocated"
    capacity_bytes: Optional[int]
    weights_bytes: int
    gradients_bytes: int
    optimizer_state_bytes: int
    activations_bytes: int
    other_bytes: int  # peak minus the named parts (never negative)
    entries: tuple[MemoryEntry, ...] = ()  # sorted by bytes, descending
    # The named parts minus the peak, when they add up to more: each part is its full size, but they are
    # not all alive at one moment (backward frees activations as it makes gradients).  Always
    # peak = weights + gradients + optimizer state + activations + other - overlap.
    overlap_bytes: int = 0
    # What capacity_bytes is: on CUDA what this process can get (free + held by torch's allocator), not
    # the device's total.  "" in reports written before it was recorded.
    capacity_source: str = ""
    # CUDA only: the caching allocator's reserved peak over the measured iteration (torch.cuda.
    # max_memory_reserved), i.e. peak_bytes plus fragmentation and cached blocks.
    reserved_peak_bytes: Optional[int] = None


@dataclass(frozen=True)
class BatchSample:
    batch_size: int
    iteration_ms: float
    peak_bytes: Optional[int]
    # As the throughput's, over this batch size's timed iterations (CPU only; the profiled batch repeats the
    # throughput's).  They grow with the batch where its blocks outgrow what the allocator keeps: the lstm
    # sample at 256 ran 52 ms with 16,920 faults an iteration, about 23 ms of it, and 3.5 ms with 13 at 16.
    page_faults_per_iteration: Optional[float] = None
    page_fault_ms: Optional[float] = None
    # CUDA only: the caching allocator's reserved peak over the iteration that measured peak_bytes (torch.cuda.
    # max_memory_reserved, measured alike: without the profiled batch's inputs at another batch size).  What it
    # reserves beyond what it allocates scales the memory line where max_batch_size is decided
    # (skyline_tui.predictions.fits.reserved_per_allocated).
    reserved_peak_bytes: Optional[int] = None


@dataclass(frozen=True)
class LinearFit:
    slope: float
    bias: float
    r2: float


@dataclass(frozen=True)
class Predictions:
    samples: tuple[BatchSample, ...]
    run_time_ms: Optional[LinearFit]
    peak_memory_bytes: Optional[LinearFit]
    # At max_batch_size when that is known, else the fit's limit 1000/slope; null when the fit is
    # meaningless (slope not positive, or R² below skyline_tui.predictions.fits.MIN_R2_FOR_MAX).
    predicted_max_samples_per_second: Optional[float]
    max_batch_size: Optional[int]  # the largest batch predicted (or known) to fit in device memory
    oom_batch_size: Optional[int] = None  # smallest batch size that ran out of memory, if any
    # The memory max_batch_size was decided against (on CUDA: free + held by torch at the start of the
    # predictions), the share of it kept free, and the rule in words.
    capacity_bytes: Optional[int] = None
    memory_headroom: float = 0.0
    fits_rule: str = ""
    # How iteration times at other batch sizes are predicted (skyline_tui.predictions.fits.time_model): "line", the
    # run_time_ms fit, when it passes within their noise of every measured point (it then averages their
    # noise); "points", the measured points joined, when the curve bends away from any line.
    time_model: str = "line"
    # The drift between processes (relative standard deviation, skyline_tui.comparison.rule.Drift.sigma) the points
    # were judged with: 0 when every batch size was measured in one process; where each ran in a process of its
    # own, what the history store had learned for this entry point on this machine, null when nothing was
    # (a point under 2x off the line is then no bend), or in a report from before this field.
    time_model_drift: Optional[float] = None


# Health flags (HealthFlag.kind), each a sign that a layer is not learning.
HEALTH_FLAG_KINDS = ("no_gradient", "update_ratio_high", "update_ratio_low", "dead_units", "saturated", "non_finite")


@dataclass(frozen=True)
class MetricSeries:
    """One metric of one module over the health iterations.  A value that was not finite (or not
    computed that iteration) is null; ``last`` and ``median`` are over the finite values."""

    last: Optional[float]
    median: Optional[float]
    series: tuple[Optional[float], ...]


@dataclass(frozen=True)
class HealthFlag:
    kind: str  # one of HEALTH_FLAG_KINDS
    message: str  # one line a user can act on


@dataclass(frozen=True)
class ModuleHealth:
    module: str  # dotted path, as in Breakdown.modules
    type: str
    file: Optional[str]  # project line where this module is called
    line: Optional[int]
    metrics: dict[str, MetricSeries]  # built-in metrics and the subscribers' series, by name
    flags: tuple[HealthFlag, ...] = ()


@dataclass(frozen=True)
class NonFinite:
    """The first operation that produced a NaN or Inf during the health iterations."""

    module: Optional[str]  # the module running the operation ("" = the root; None = outside the model)
    phase: str  # "forward" | "backward" | "optimizer"
    file: Optional[str]
    line: Optional[int]
    iteration: int  # 0-based, among the health iterations
    message: str


@dataclass(frozen=True)
class HealthError:
    """A subscriber that raised: its series is dropped, nothing else is.  With ``subscriber`` empty, the
    phase itself could not run (out of memory beside the profiled model); the other sections stand."""

    subscriber: str
    message: str
    file: Optional[str] = None
    line: Optional[int] = None


@dataclass(frozen=True)
class Health:
    iterations: int  # training iterations run from a fresh model (fewer than asked if the budget ran out)
    modules: tuple[ModuleHealth, ...] = ()  # pre-order, as in named_modules
    non_finite: Optional[NonFinite] = None
    errors: tuple[HealthError, ...] = ()
    # What the flags could not judge, and why (too few iterations for a median, too few layers to compare)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BudgetResult:
    """One ``--fail-if METRIC OP VALUE``: the budget fails (``ok`` false) when the condition holds, or
    when the metric was not measured.  ``value`` and ``limit`` are in the report's units (ms, bytes)."""

    expr: str  # as the user wrote it
    metric: str  # the dotted report path, e.g. "memory.peak_bytes"
    value: Optional[float]  # None: not measured in this run
    limit: float
    ok: bool


@dataclass(frozen=True)
class MetricChange:
    """One metric against the baseline.  ``change_pct`` is signed so that positive is worse (slower,
    fewer samples/s, more memory); ``noise`` is the difference the two runs' spreads allow."""

    metric: str  # dotted report path
    baseline: float
    current: float
    change_pct: float
    noise: float  # in the metric's unit; 0 when the runs give no spread (peak memory)
    regressed: bool  # worse by more than max_regression_pct AND by more than the noise


@dataclass(frozen=True)
class BaselineComparison:
    source: str  # the baseline report file, or the history run id
    max_regression_pct: float
    noise_sigmas: float  # how many standard deviations of each run count as noise
    changes: tuple[MetricChange, ...] = ()
    ok: bool = True


@dataclass(frozen=True)
class Report:
    entry_point: str
    project_root: str
    batch_size: Optional[int] = None
    device: Optional[DeviceInfo] = None
    torch_version: Optional[str] = None
    throughput: Optional[Throughput] = None
    breakdown: Optional[Breakdown] = None
    memory: Optional[MemoryBreakdown] = None
    health: Optional[Health] = None
    predictions: Optional[Predictions] = None
    budgets: tuple[BudgetResult, ...] = ()  # --fail-if, evaluated after the run
    baseline: Optional[BaselineComparison] = None  # --baseline, compared after the run
    error: Optional[ErrorInfo] = None
    created_at: Optional[str] = None  # ISO 8601, UTC
    compile_ms: Optional[float] = None  # ProfileConfig.compile: the first, compiling iteration (not in throughput)
    schema_version: int = SCHEMA_VERSION
    tool: ToolInfo = field(default_factory=lambda: _tool_info())

    @property
    def ok(self) -> bool:
        return self.error is None

    def replace(self, **changes: Any) -> "Report":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        as_dict: dict[str, Any] = to_dict(self)
        return as_dict

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ReportFormatError(f"unsupported report schema_version {version!r} (expected {SCHEMA_VERSION})")
        return from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> "Report":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportFormatError(f"not a JSON report: {exc}") from None
        if not isinstance(data, dict):
            raise ReportFormatError("not a JSON report: the top level is not an object")
        return cls.from_dict(data)


def _tool_info() -> ToolInfo:
    from skyline_tui.version import TOOL_NAME, __version__

    return ToolInfo(name=TOOL_NAME, version=__version__)
