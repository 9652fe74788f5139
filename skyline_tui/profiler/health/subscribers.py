"""Finding the user's health metrics and running them so that one that fails spoils nothing else.

Subscribers come from the entry point's ``skyline_health_subscribers()`` and from installed packages
(entry-point group ``skyline_tui.health``).  A subscriber that cannot be loaded, or raises in
``compute``, or returns something that is not a number, is listed once in ``Health.errors`` (its name,
the message and the line of its own code that raised) and gets no more calls; its series is dropped.
"""

from __future__ import annotations

import inspect
import os
import traceback
from importlib import metadata
from types import ModuleType
from typing import Any, Optional

from torch import nn

from skyline_tui.health import ENTRY_HOOK, ENTRY_POINT_GROUP, KINDS, Subscriber
from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.report import HealthError


class SubscriberSet:
    """The subscribers of one health phase, their series, and their errors."""

    def __init__(self, subscribers: list[Subscriber], errors: list[HealthError], files: ProjectFiles):
        self.subscribers = subscribers
        self.errors = errors
        self._files = files
        self._failed: set[int] = set()

    @property
    def wanted_kinds(self) -> set[str]:
        return {kind for sub in self.subscribers for kind in sub.kinds}

    def compute(self, path: str, module: nn.Module, held: dict[str, Any]) -> dict[str, Optional[float]]:
        """Each live subscriber's value for one module (those whose kinds the module lacks are skipped)."""
        values: dict[str, Optional[float]] = {}
        for sub in self.subscribers:
            if id(sub) in self._failed or not all(kind in held for kind in sub.kinds):
                continue
            data = {kind: held[kind] for kind in sub.kinds}
            try:
                value = sub.compute(path, module, data)
                values[sub.name] = None if value is None else _as_float(value)
            except Exception as exc:  # noqa: BLE001 - a user's metric may raise anything
                self._failed.add(id(sub))
                self.errors.append(self._error(sub, exc, f"on module {path or '(root)'!r}"))
        return values

    def series_names(self) -> set[str]:
        """The subscribers whose series stand (a failed one's series is dropped)."""
        return {sub.name for sub in self.subscribers if id(sub) not in self._failed}

    def _error(self, sub: Any, exc: BaseException, context: str) -> HealthError:
        name = getattr(sub, "name", "") or type(sub).__name__
        file, line = _own_frame(exc, sub, self._files)
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
        return HealthError(subscriber=name, message=f"{message} ({context})", file=file, line=line)


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"compute() returned {value!r}, not a number")
    try:
        return float(value)  # a 0-dim tensor or a numpy scalar converts too
    except (TypeError, ValueError):
        raise TypeError(f"compute() returned {type(value).__name__}, not a number or None") from None


def _own_frame(exc: BaseException, sub: Any, files: ProjectFiles) -> tuple[Optional[str], Optional[int]]:
    """The innermost traceback line in the subscriber's own file (else the innermost at all)."""
    try:
        own = os.path.realpath(inspect.getfile(type(sub)))
    except (TypeError, OSError):
        own = None
    frames = traceback.extract_tb(exc.__traceback__)
    chosen = next((f for f in reversed(frames) if own and os.path.realpath(f.filename) == own), None)
    if chosen is None and frames:
        chosen = frames[-1]
    if chosen is None:
        return None, None
    return files.relpath(chosen.filename) or chosen.filename, chosen.lineno


def load_subscribers(module: Optional[ModuleType], files: ProjectFiles) -> SubscriberSet:
    """The subscribers ``module`` offers (an entry point's ``skyline_health_subscribers()``; None: none),
    then the installed packages'.  ``files`` names the project's code, for the line a subscriber
    raised at."""
    found: list[Any] = []
    errors: list[HealthError] = []
    subscribers = SubscriberSet([], errors, files)
    hook = getattr(module, ENTRY_HOOK, None) if module is not None else None
    if callable(hook):
        try:
            found += list(hook())
        except Exception as exc:  # noqa: BLE001
            errors.append(subscribers._error(hook, exc, f"in {ENTRY_HOOK}()"))
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
            if isinstance(loaded, type):
                found.append(loaded())
            elif isinstance(loaded, Subscriber):
                found.append(loaded)
            else:
                found += list(loaded())
        except Exception as exc:  # noqa: BLE001
            errors.append(HealthError(subscriber=point.name, message=f"cannot load {point.value}: {exc}"))
    for sub in found:
        problem = _contract_problem(sub)
        if problem is None:
            subscribers.subscribers.append(sub)
        else:
            errors.append(HealthError(subscriber=getattr(sub, "name", "") or type(sub).__name__, message=problem))
    return subscribers


def _contract_problem(sub: Any) -> Optional[str]:
    if not callable(getattr(sub, "compute", None)):
        return f"{type(sub).__name__} has no compute(module_name, module, data) method"
    if not isinstance(getattr(sub, "name", None), str) or not sub.name:
        return f"{type(sub).__name__} sets no name"
    kinds = getattr(sub, "kinds", None)
    if not isinstance(kinds, tuple) or not kinds or any(kind not in KINDS for kind in kinds):
        return f"{sub.name}: kinds must be a non-empty tuple of {', '.join(KINDS)}; got {kinds!r}"
    return None
