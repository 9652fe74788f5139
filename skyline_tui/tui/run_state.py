"""What the live view of a run shows, folded from the run's events by pure functions.

One frozen :class:`RunView`, changed only by :func:`fold` (a batch of events, as the app drains them a few
times a second) and the few transitions below (capacity read, metric chosen, stop asked, run over).  No
Textual, no torch: tested by feeding events.  Long runs stay small: the step charts keep the last
``RECENT_STEPS`` steps, the loss curve and each tracked metric's (``tui.run_metrics``) the whole run in at
most ``CURVE_POINTS`` points (neighbours averaged as it grows), each layer the last ``LAYER_POINTS`` samples
of each metric.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from typing import Iterable, Optional

from skyline_tui.report import ErrorInfo, Health
from skyline_tui.run import events as ev
from skyline_tui.run.summary import RunSummary, first_non_finite, passes_per_step, terms_per_step
from skyline_tui.tui.curve import Curve, curve_add
from skyline_tui.tui.health_rows import HealthRow, row_metric
from skyline_tui.tui.run_metrics import MetricShown, MetricTrace, fold_metrics, metric_shown, step_choice

RECENT_STEPS = 120
LAYER_POINTS = 60

STARTING, RUNNING, STOPPING, ENDED = "starting", "running", "stopping", "ended"


@dataclass(frozen=True)
class StepPoint:
    index: int
    wall_ms: float
    forward_ms: float
    backward_ms: float
    optimizer_ms: float
    evaluation_ms: float
    other_ms: float
    samples_per_second: Optional[float]


@dataclass(frozen=True)
class LayerTrace:
    module: str
    order: int  # first seen: the model's pre-order
    metrics: dict[str, tuple[float, ...]]  # finite values, oldest first
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunView:
    script: str
    phase: str = STARTING
    pid: Optional[int] = None
    torch_version: Optional[str] = None
    cuda: bool = False
    samples_from: Optional[ev.SamplesFrom] = None
    steps: int = 0
    recent: tuple[StepPoint, ...] = ()
    loss: Curve = field(default_factory=Curve)
    last_loss: Optional[float] = None
    first_loss: Optional[float] = None
    non_finite_losses: int = 0
    loss_passes: tuple[int, int] = (0, 0)  # the fewest and the most backward passes a step ran
    loss_terms: tuple[int, int] = (0, 0)  # ... and of them summed into its loss
    rss_bytes: Optional[int] = None
    allocated_bytes: Optional[int] = None
    reserved_bytes: Optional[int] = None
    peak_rss_bytes: Optional[int] = None
    peak_allocated_bytes: Optional[int] = None
    host_ram_bytes: Optional[int] = None  # the capacity on CPU
    gpu_total_bytes: Optional[int] = None  # the capacity on a GPU
    layers: tuple[LayerTrace, ...] = ()
    judged: Optional[Health] = None  # the layers' files, lines and flag messages
    health_samples: int = 0  # changes whenever the layers do: the pane is rebuilt only then
    non_finite: Optional[ev.NonFiniteSeen] = None  # the first (the summary's rule)
    located: Optional[ev.NonFiniteSeen] = None  # the first found at a layer (a later step, between samples)
    error: Optional[ErrorInfo] = None
    why_no_steps: Optional[str] = None
    exit_message: Optional[str] = None
    exit_code: Optional[int] = None
    summary: Optional[RunSummary] = None  # the final numbers, once the run is over
    run_id: Optional[int] = None  # in the history store
    metrics: tuple[MetricTrace, ...] = ()  # what the script tracked, in the order first logged
    chosen_metric: Optional[str] = None  # the one the metrics pane shows (None: the first)


def fold(view: RunView, events: Iterable[ev.Event]) -> RunView:
    """The view after ``events`` (in order).  The script's output is not state: it goes to the log pane."""
    steps: list[ev.Step] = []
    for event in events:
        if isinstance(event, ev.Step):
            steps.append(event)  # many a second: folded in one pass, not one copy of the view each
            continue
        if steps:
            view, steps = _fold_steps(view, steps), []
        view = _fold_event(view, event)
    return _fold_steps(view, steps) if steps else view


def _fold_steps(view: RunView, steps: list[ev.Step]) -> RunView:
    loss, first_loss, last_loss = view.loss, view.first_loss, view.last_loss
    memory = {name: getattr(view, name) for name in ("rss_bytes", "allocated_bytes", "reserved_bytes")}
    peak_rss, peak_allocated = view.peak_rss_bytes, view.peak_allocated_bytes
    non_finite = view.non_finite_losses
    for step in steps:
        if step.loss is not None:
            loss = curve_add(loss, step.loss)
            first_loss = step.loss if first_loss is None else first_loss
            last_loss = step.loss
        non_finite += step.non_finite_losses
        # Memory is read at some step ends only (None in between): the latest reading stays until the next.
        for name in memory:
            value = getattr(step, name)
            if value is not None:
                memory[name] = value
        peak_rss = _max(peak_rss, step.rss_bytes)
        peak_allocated = _max(peak_allocated, step.peak_allocated_bytes)
    recent = (*view.recent, *(_point(step) for step in steps[-RECENT_STEPS:]))[-RECENT_STEPS:]
    return replace(view, steps=steps[-1].index, recent=recent, loss=loss, first_loss=first_loss,
                   last_loss=last_loss, non_finite_losses=non_finite, peak_rss_bytes=peak_rss,
                   loss_passes=passes_per_step(steps, view.loss_passes),
                   loss_terms=terms_per_step(steps, view.loss_terms),
                   peak_allocated_bytes=peak_allocated, **memory)


def _fold_event(view: RunView, event: ev.Event) -> RunView:
    if isinstance(event, ev.ScriptStarted):
        return replace(view, pid=event.pid, phase=RUNNING if view.phase == STARTING else view.phase)
    if isinstance(event, ev.TorchSeen):
        return replace(view, torch_version=event.torch_version, cuda=event.cuda)
    if isinstance(event, ev.SamplesFrom):
        return replace(view, samples_from=event)
    if isinstance(event, ev.HealthSampled):
        return replace(view, layers=_sample_layers(view.layers, event), health_samples=view.health_samples + 1)
    if isinstance(event, ev.HealthJudged):
        return replace(view, judged=event.health, health_samples=view.health_samples + 1)
    if isinstance(event, ev.NonFiniteSeen):
        located = view.located if view.located is not None or event.where is None else event
        return replace(view, non_finite=first_non_finite(view.non_finite, event), located=located)
    if isinstance(event, ev.ChildFinished):
        return replace(view, error=event.error, why_no_steps=event.why_no_steps,
                       peak_rss_bytes=_max(view.peak_rss_bytes, event.peak_rss_bytes),
                       peak_allocated_bytes=_max(view.peak_allocated_bytes, event.peak_allocated_bytes))
    if isinstance(event, ev.Metrics):
        return replace(view, metrics=fold_metrics(view.metrics, event))
    if isinstance(event, ev.ScriptExited):
        return replace(view, phase=ENDED, exit_message=event.message, exit_code=event.exit_code)
    return view  # ScriptOutput: the log pane's


def _point(step: ev.Step) -> StepPoint:
    rate = step.samples * 1e3 / step.wall_ms if step.samples and step.wall_ms > 0 else None
    return StepPoint(step.index, step.wall_ms, step.forward_ms, step.backward_ms, step.optimizer_ms,
                     step.evaluation_ms, step.other_ms, rate)


def _max(known: Optional[int], value: Optional[int]) -> Optional[int]:
    if value is None:
        return known
    return value if known is None else max(known, value)


def _sample_layers(layers: tuple[LayerTrace, ...], event: ev.HealthSampled) -> tuple[LayerTrace, ...]:
    by_module = {layer.module: layer for layer in layers}
    for module, values in event.values.items():
        layer = by_module.get(module) or LayerTrace(module, len(by_module), {})
        metrics = dict(layer.metrics)
        for metric, value in values.items():
            if value is not None:
                metrics[metric] = (*metrics.get(metric, ()), value)[-LAYER_POINTS:]
        by_module[module] = replace(layer, metrics=metrics)
    # Flags are as judged so far: a layer not listed in this sample's flags has none now.
    by_module = {module: replace(layer, flags=tuple(event.flagged.get(module, ())))
                 for module, layer in by_module.items()}
    return tuple(sorted(by_module.values(), key=lambda layer: layer.order))


# ---- transitions the app makes ---------------------------------------------------------------------------

def capacity_read(view: RunView, host_ram_bytes: Optional[int], gpu_total_bytes: Optional[int]) -> RunView:
    return replace(view, host_ram_bytes=host_ram_bytes, gpu_total_bytes=gpu_total_bytes)


def metric_chosen(view: RunView, delta: int) -> RunView:
    """The metrics pane steps ``delta`` metrics on (the keys ``n`` and ``p``), going round."""
    return replace(view, chosen_metric=step_choice(view.metrics, view.chosen_metric, delta))


def stop_asked(view: RunView) -> RunView:
    return replace(view, phase=STOPPING) if view.phase in (STARTING, RUNNING) else view


def run_over(view: RunView, summary: RunSummary, run_id: Optional[int]) -> RunView:
    """The launcher returned: the summary (the same the headless run writes) holds the final numbers."""
    return replace(view, phase=ENDED, summary=summary, run_id=run_id,
                   exit_code=summary.exit_code if summary.exit_code is not None else view.exit_code)


def run_over_without_summary(view: RunView, error: ErrorInfo) -> RunView:
    """The run could not be supervised at all (the launcher failed): the error is what there is to show."""
    return replace(view, phase=ENDED, error=error)


# ---- what the panes show ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepFigures:
    """The step pane's numbers: the median over the recent steps while the run goes (as the headless
    progress line does), the summary's (after the warm-up) once it is over; the phases as means over the
    same steps, so they add up to the mean step."""

    step_ms: Optional[float]
    samples_per_second: Optional[float]
    phases_ms: tuple[tuple[str, float], ...]  # (forward | backward | optimizer | evaluation | other, ms)
    final: bool


PHASES = ("forward", "backward", "optimizer", "evaluation", "other")


def step_figures(view: RunView) -> StepFigures:
    summary = view.summary
    if summary is not None and summary.steps:
        p = summary.phases_ms
        phases = tuple((name, value or 0.0) for name, value in zip(
            PHASES, (p.forward, p.backward, p.optimizer, p.evaluation, p.other)))
        return StepFigures(summary.step_ms.median, summary.samples_per_second, phases, final=True)
    recent = view.recent[-20:]
    if not recent:
        return StepFigures(None, None, (), final=summary is not None)
    rates = [p.samples_per_second for p in recent if p.samples_per_second is not None]
    n = len(recent)
    phases = tuple((name, sum(getattr(p, f"{name}_ms") for p in recent) / n) for name in PHASES)
    return StepFigures(statistics.median(p.wall_ms for p in recent), statistics.median(rates) if rates else None,
                       phases, final=False)


def layer_rows(view: RunView) -> list[HealthRow]:
    """The layers as the Health pane's rows: flagged first, then in the model's order; each with the
    sparkline of its main metric (the profile's choice), its file and line from the judged health."""
    judged = {m.module: m for m in view.judged.modules} if view.judged is not None else {}
    rows = []
    for layer in view.layers:
        metric = row_metric(layer.metrics, layer.flags)
        series = layer.metrics.get(metric, ()) if metric is not None else ()
        module = judged.get(layer.module)
        messages = tuple(f.message for f in module.flags) if module is not None else ()
        rows.append(HealthRow(
            key=layer.module or "(root)", module=layer.module or "(root)", type=module.type if module else "",
            file=module.file if module else None, line=module.line if module else None, share=None,
            metric=metric, series=series, last=series[-1] if series else None, flags=layer.flags,
            messages=messages))
    order = {layer.module or "(root)": layer.order for layer in view.layers}
    rows.sort(key=lambda row: (not row.flags, order[row.key]))
    return rows


def non_finite_text(view: RunView) -> Optional[str]:
    """The first NaN/Inf; where it was first found at a layer on a later step (health is sampled every N
    steps), that too, with its line."""
    found = view.non_finite
    if found is None:
        return None
    located = view.located
    if located is None or located.where is None:
        return f"NaN/Inf at step {found.step}: {found.message}"
    where = located.where
    at = f"{where.file}:{where.line}" if where.file and where.line else "an unknown line"
    module = f" in {where.module or '(root)'}" if where.module is not None else ""
    if found.step == located.step:
        return f"NaN/Inf first at step {found.step}: {at}{module} ({where.phase}) · e: go to the line"
    return (f"NaN/Inf first at step {found.step} (the loss); at a layer first at step {located.step}: {at}{module} "
            f"({where.phase}) · e: go to the line")


def status_text(view: RunView) -> str:
    if view.phase == STARTING:
        return "starting the script…"
    if view.phase == STOPPING and view.exit_message is None:
        return f"stopping (Ctrl-C sent to pid {view.pid})…"
    if view.phase == ENDED:
        recorded = f" · recorded as run #{view.run_id}" if view.run_id is not None else ""
        return f"{view.exit_message or 'the script ended'}{recorded} · q quits"
    torch = "" if view.torch_version else " · waiting for torch"
    return f"running · pid {view.pid} · step {view.steps}{torch}"


def shown_metric(view: RunView) -> Optional[MetricShown]:
    return metric_shown(view.metrics, view.chosen_metric)


MemoryReading = tuple[str, Optional[int], Optional[int], Optional[int], str]  # label, used, peak, capacity, of


def memory_readings(view: RunView) -> list[MemoryReading]:
    """On a GPU, allocated and reserved against the device's memory, then the host's RSS against its RAM."""
    rows: list[MemoryReading] = []
    if view.cuda and (view.allocated_bytes is not None or view.reserved_bytes is not None):
        rows.append(("alloc", view.allocated_bytes, view.peak_allocated_bytes, view.gpu_total_bytes, "GPU"))
        rows.append(("resv", view.reserved_bytes, None, view.gpu_total_bytes, "GPU"))
    rows.append(("RSS", view.rss_bytes, view.peak_rss_bytes, view.host_ram_bytes, "RAM"))
    return rows
