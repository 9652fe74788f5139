"""The hooks skyline-tui puts on a user's modules, left out when the module is saved, copied or scripted.

A module keeps its forward hooks in its ``__dict__``, so ``torch.save(model)`` and ``copy.deepcopy(model)`` (an
EMA model, the best epoch's snapshot) take them along: ours hold the supervisor's state (the event pipe, a
struct packer), which cannot be pickled, and a copy would report to it.  pytorch/examples' word_language_model
failed at its ``torch.save(model, f)`` under ``skyline-tui run``.  Registered here, a hook is marked (a
``functools.partial`` of its own kind: called in C, no Python frame added per call), and ``nn.Module.__getstate__``
(which pickling and ``deepcopy`` call) is wrapped once to leave the marked hooks out of the state: the module
keeps them, the copy or the saved file has none.  ``torch.jit.script(model)`` would compile them as TorchScript,
and fail ("Hook '_root_post' on module 'Sequential' was expected to only have exactly 3 inputs"), and
``torch.jit.trace(model, x)`` would run them into the trace: while a module tree is scripted
(``torch.jit._recursive.create_script_module``, where scripting a module starts) or traced
(``torch.jit._trace.trace_module``), ours are set aside, and put back after.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections import OrderedDict
from typing import Any, Callable, Iterator

from torch import nn
from torch.utils.hooks import RemovableHandle

# The dicts of a module's state that hold a forward hook, or a flag of one, by the hook's handle id.
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


class _Ours(functools.partial):  # type: ignore[type-arg]
    """A hook of ours: what ``_without_ours`` leaves out."""


def forward_pre_hook(module: nn.Module, hook: Callable[..., Any], **options: Any) -> RemovableHandle:
    """``module.register_forward_pre_hook(hook, **options)``, left out of the module's copies."""
    _wrap_torch()
    return module.register_forward_pre_hook(_Ours(hook), **options)


def forward_hook(module: nn.Module, hook: Callable[..., Any], **options: Any) -> RemovableHandle:
    """``module.register_forward_hook(hook, **options)``, left out of the module's copies."""
    _wrap_torch()
    return module.register_forward_hook(_Ours(hook), **options)


def quiet_compile_warning() -> None:
    """``torch.compile(model)`` warns at each call while any global module hook exists: ours (the profile's
    breakdown; a supervised run's first step).  The user's code did nothing to be warned about."""
    warnings.filterwarnings("ignore", message=r"Using `torch.compile\(module\)` when there are global hooks")


def _wrap_torch() -> None:
    """Once: ``nn.Module.__getstate__`` leaves ours out; scripting and tracing set them aside."""
    original: Callable[[nn.Module], dict[str, Any]] = nn.Module.__getstate__
    if getattr(original, "_leaves_out_ours", False):
        return

    @functools.wraps(original)
    def __getstate__(self: nn.Module) -> dict[str, Any]:
        return _without_ours(original(self))

    __getstate__._leaves_out_ours = True  # type: ignore[attr-defined]
    nn.Module.__getstate__ = __getstate__  # type: ignore[method-assign]
    _wrap_scripting()


def _wrap_scripting() -> None:
    from torch.jit import _recursive, _trace

    for home, name in ((_recursive, "create_script_module"), (_trace, "trace_module")):
        original: Callable[..., Any] = getattr(home, name)

        def aside(module: Any, *args: Any, original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            if not isinstance(module, nn.Module):
                return original(module, *args, **kwargs)
            with _set_aside(module):
                return original(module, *args, **kwargs)

        setattr(home, name, functools.wraps(original)(aside))


@contextlib.contextmanager
def _set_aside(root: nn.Module) -> Iterator[None]:
    """Our hooks out of every module of ``root`` meanwhile (the same dicts back after: their handles hold them)."""
    saved: list[tuple[nn.Module, str, Any]] = []
    for module in root.modules():
        state = module.__dict__
        for name, value in _without_ours({name: state[name] for name in _HOOK_DICTS if name in state}).items():
            if value is not state[name]:
                saved.append((module, name, state[name]))
                state[name] = value
    try:
        yield
    finally:
        for module, name, value in saved:
            module.__dict__[name] = value


def _without_ours(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (a shallow copy of a module's ``__dict__``) with new hook dicts that hold none of ours."""
    ours = {key for name in ("_forward_pre_hooks", "_forward_hooks")
            for key, hook in state.get(name, {}).items() if isinstance(hook, _Ours)}
    if ours:
        for name in _HOOK_DICTS:
            if name in state:
                state[name] = OrderedDict((key, value) for key, value in state[name].items() if key not in ours)
    return state
