"""Per-layer health of a live run, on the steps its schedule picks (:mod:`skyline_tui.run.health_budget`): the
profile's publisher and judgement (profiler/health), on the modules the script trains.

The publishers are built after the first step (the outermost modules trained are known then), one per such
module (a GAN's generator and discriminator), with the script's ``skyline_health_subscribers()`` and the
installed packages' subscribers.  Between sampled steps they are parked: their per-layer hooks are off (a step not
sampled pays nothing per layer), the optimizer watch stays (torch iterates the optimizers' global hooks while a
step closes, so those are never added or removed then).  A sampled step begins at its first training forward
(or backward), not where the last one closed: an evaluation after the last step, or between two, runs without
the hooks (an evaluation after the last step had run 7-12x slower under them).  It ends where it closes, after
the optimizer's step (or, updating by hand, at the next forward's start: the outermost module's own hooks
registered then run from the next call on; the gradients are read as backward ends, before a ``zero_grad`` at
the top of the script's next step clears them).  A sampled step with a NaN/Inf is located
at the first layer (in module order) whose output was not finite, else whose gradient was not (backward), else
whose weights were (the optimizer), else outside the model (the loss: a NaN there, ``health/outside.py``).
"""

from __future__ import annotations

import math
import sys
from types import FrameType
from typing import Any, Optional

from torch import nn

from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.profiler.health import IterationValues, Publisher, load_subscribers
from skyline_tui.report import Health, ModuleHealth, NonFinite

WINDOW = 200  # sampled steps kept for the judgement of a long run
JUDGE_EVERY = 20  # samples between two judgements sent (the judgement is over the whole window)


class HealthSampler:
    def __init__(self, roots: list[nn.Module], root: str):
        self.files = ProjectFiles(root)
        self.subscribers = load_subscribers(sys.modules.get("__main__"), self.files)
        trained = [m for m in roots if any(p.requires_grad for p in m.parameters())]
        self.publishers = [Publisher(m, self.files, subscribers=self.subscribers, window=WINDOW) for m in trained]
        self.prefixes = _script_names(trained, self.files) or _prefixes(trained)
        self.sampling: Optional[int] = None  # the step index being sampled
        self.due: Optional[int] = None  # the step index to sample, from its first training pass on
        self.non_finite: Optional[NonFinite] = None
        self.samples = 0

    def attach(self) -> None:
        """The optimizer watch on; the per-layer hooks parked until a sampled step trains."""
        for publisher in self.publishers:
            publisher.attach()
            publisher.park()

    def step_begins(self, index: int, due: bool) -> None:
        """The step ``index`` (1-based) begins: sample it when its turn has come (``due``: the schedule's
        word, :mod:`skyline_tui.run.health_budget`), once it trains (``training_begins``).  Until then the hooks
        are parked: an evaluation after the last step (or between two) runs without them."""
        self.due = index if due and self.publishers else None
        for publisher in self.publishers:
            if not publisher.parked:
                publisher.park()

    def training_begins(self) -> None:
        """The step's first training forward (or backward): its sample starts here when it is due."""
        if self.due is not None:
            self.sampling, self.due = self.due, None
            for publisher in self.publishers:
                publisher.start_iteration()  # unparks

    def backward_ended(self) -> None:
        """Updating by hand: the gradients of a sampled step as its backward ends (see ``read_gradients``)."""
        if self.sampling is not None:
            for publisher in self.publishers:
                publisher.read_gradients()

    def step_ends(self, index: int) -> Optional[tuple[dict[str, dict[str, Optional[float]]], Optional[NonFinite]]]:
        """The sampled step closed: its values by module, and where a NaN/Inf first appeared if it did now."""
        if self.sampling is None:
            return None
        self.sampling = None
        found: Optional[NonFinite] = None
        merged: dict[str, dict[str, Optional[float]]] = {}
        for publisher, prefix in zip(self.publishers, self.prefixes):
            values = publisher.end_iteration()
            if found is None and self.non_finite is None and not publisher.finite:
                found = locate(publisher, values, prefix, index)
            for path, metrics in values.items():
                shown = f"{prefix}.{path}" if prefix and path else (prefix or path)
                merged[shown] = {name: v if math.isfinite(v) else None for name, v in metrics.items()}
            for path, custom in (publisher.custom[-1] if publisher.custom else {}).items():
                shown = f"{prefix}.{path}" if prefix and path else (prefix or path)
                merged.setdefault(shown, {}).update(
                    {name: v if v is not None and math.isfinite(v) else None for name, v in custom.items()})
        if found is not None:
            self.non_finite = found
        self.samples += 1
        return merged, found

    def judge_now(self) -> bool:
        return self.samples > 0 and (self.samples == 1 or self.samples % JUDGE_EVERY == 0)

    def cancel(self) -> None:
        for publisher in self.publishers:
            publisher.detach()
        self.sampling = self.due = None

    def health(self) -> Health:
        parts = [(publisher.health(non_finite=_local(self.non_finite, prefix)), prefix)
                 for publisher, prefix in zip(self.publishers, self.prefixes)]
        modules: list[ModuleHealth] = []
        errors: list[Any] = []
        notes: list[str] = []
        for health, prefix in parts:
            modules += [_prefixed(row, prefix) for row in health.modules]
            errors += [e for e in health.errors if e not in errors]
            notes += [n for n in health.notes if n not in notes]
        iterations = max((h.iterations for h, _ in parts), default=0)
        return Health(iterations=iterations, modules=tuple(modules), non_finite=self.non_finite, errors=tuple(errors),
                      notes=tuple(notes))


def _script_names(models: list[nn.Module], files: ProjectFiles) -> Optional[list[str]]:
    """With several trained models, the names the script gives them (a GAN's ``netG`` and ``netD``): the variables
    that hold them in its frames on the stack now (health starts inside its ``backward()``), innermost first, locals
    before globals.  None unless each model has a name of its own."""
    if len(models) <= 1:
        return None
    found: dict[int, str] = {}
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None and len(found) < len(models):
        if files.relpath(frame.f_code.co_filename) is not None:
            for scope in (frame.f_locals, frame.f_globals):
                for name, value in list(scope.items()):
                    if isinstance(value, nn.Module) and name.isidentifier() and not name.startswith("_"):
                        found.setdefault(id(value), name)
        frame = frame.f_back
    names = [found.get(id(m)) for m in models]
    return [name for name in names if name] if all(names) and len(set(names)) == len(names) else None


def _prefixes(models: list[nn.Module]) -> list[str]:
    """Module paths as the report shows them: as they are with one trained model; with several, under the
    model's class name (numbered where two share one)."""
    if len(models) <= 1:
        return [""]
    names = [type(m).__name__ for m in models]
    return [name if names.count(name) == 1 else f"{name}#{names[:i + 1].count(name)}" for i, name in enumerate(names)]


def _prefixed(row: ModuleHealth, prefix: str) -> ModuleHealth:
    if not prefix:
        return row
    return ModuleHealth(module=f"{prefix}.{row.module}" if row.module else prefix, type=row.type, file=row.file,
                        line=row.line, metrics=row.metrics, flags=row.flags)


def _local(found: Optional[NonFinite], prefix: str) -> Optional[NonFinite]:
    """The NaN/Inf as one publisher's judgement sees it (its own module paths), or None when not its model's."""
    if found is None or found.module is None or not prefix:
        return found
    if found.module == prefix or found.module.startswith(prefix + "."):
        local = found.module[len(prefix) + 1:] if found.module != prefix else ""
        return NonFinite(module=local, phase=found.phase, file=found.file, line=found.line,
                         iteration=found.iteration, message=found.message)
    return None


def _bad(values: dict[str, float], names: tuple[str, ...]) -> bool:
    return any(name in values and not math.isfinite(values[name]) for name in names)


def locate(publisher: Publisher, values: IterationValues, prefix: str, step: int) -> NonFinite:
    order = [path for path, _ in publisher.modules]
    checks = (("forward", ("activation_mean", "activation_std"), order),
              ("backward", ("grad_norm",), list(reversed(order))),  # backward meets the last layer first
              ("optimizer", ("update_to_weight", "weight_norm"), order))
    for phase, names, paths in checks:
        for path in paths:
            if _bad(values.get(path, {}), names):
                site = publisher.call_sites.get(path)
                shown = f"{prefix}.{path}" if prefix and path else (prefix or path)
                what = {"forward": "output", "backward": "gradient", "optimizer": "weights"}[phase]
                kind = type(dict(publisher.modules)[path]).__name__
                return NonFinite(module=shown, phase=phase, file=site[0] if site else None,
                                 line=site[1] if site else None, iteration=step,
                                 message=f"the {what} of {shown or '(model)'} ({kind}) was not finite at step {step} "
                                         f"({phase})")
    return NonFinite(module=None, phase="forward", file=None, line=None, iteration=step,
                     message=f"a NaN appeared outside the model at step {step} (the loss or what it was "
                             "computed from)")
