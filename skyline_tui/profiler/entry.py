"""Loading a Skyline entry point and checking its three providers.

The contract (kept from Skyline so existing projects run unchanged):

- ``skyline_model_provider()`` returns the model (an ``nn.Module`` on the device to use);
- ``skyline_input_provider(batch_size=32)`` returns a tuple/list of positional inputs; its default is the
  batch size profiled;

Each provider may also take knobs: keyword parameters with defaults beyond the contract's own
(``skyline_model_provider(hidden=256)``, ``skyline_input_provider(batch_size=32, seq_len=128)``), which a
sweep sets by name.
- ``skyline_iteration_provider(model)`` returns ``iteration(*inputs)``, one full training iteration.

DeepView's ``deepview_*`` names are accepted as aliases.  Every violation raises a ProfileError whose
message names the function, and whose file/line point at it.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

from skyline_tui.profiler.errors import ProfileError, fail, from_exception
from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.project import entry_problem, project_root as resolve_project_root

PREFIXES = ("skyline", "deepview")
PROVIDERS = ("model_provider", "input_provider", "iteration_provider")


@dataclass
class EntryPoint:
    path: Path  # absolute
    files: ProjectFiles  # project root and frame classification
    module: ModuleType
    model_provider: Callable[[], Any]
    input_provider: Callable[..., Any]
    iteration_provider: Callable[[Any], Any]
    default_batch_size: int

    @property
    def rel_path(self) -> str:
        return self.files.relpath(str(self.path)) or str(self.path)

    def where(self, func: Callable[..., Any]) -> tuple[Optional[str], Optional[int]]:
        code = getattr(func, "__code__", None)
        if code is None:
            return self.rel_path, None
        return self.files.relpath(code.co_filename) or code.co_filename, code.co_firstlineno


def resolve_paths(entry: str | os.PathLike[str], root: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """Check the entry point path (exists, is a file) and return (entry, project root), both absolute.
    The root is ``root``, else the enclosing project's (skyline_tui.project, which the app uses too)."""
    problem = entry_problem(entry, root)
    if problem is not None:
        raise ProfileError(problem)
    path = Path(entry).expanduser().resolve()
    return path, resolve_project_root(path, root)


def read_source(path: Path, display: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail("file", f"cannot read {display}: {exc.strerror or exc}", file=display) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise fail("file", f"{display} is not UTF-8 text (byte {exc.start}, line {line})",
                   file=display, line=line) from None


def load_entry_point(entry: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> EntryPoint:
    path, project_root = resolve_paths(entry, root)
    files = ProjectFiles(project_root)
    display = files.relpath(str(path)) or str(path)
    source = read_source(path, display)
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise fail("syntax", f"{exc.msg} ({display}, line {exc.lineno})", file=display, line=exc.lineno,
                   traceback_text=_format_syntax_error(exc, display)) from None

    # The entry's folder goes first so `from model import Net` finds the sibling module.
    entry_dir = str(path.parent)
    if sys.path[:1] != [entry_dir]:
        sys.path.insert(0, entry_dir)
    module_name = "__skyline_entry__"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)
    except SyntaxError as exc:  # a sibling module imported by the entry point
        rel = files.relpath(exc.filename or "") or exc.filename
        raise fail("syntax", f"{exc.msg} ({rel}, line {exc.lineno})", file=rel, line=exc.lineno,
                   traceback_text=_format_syntax_error(exc, rel or "?")) from None
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything, SystemExit included
        raise ProfileError(from_exception(exc, files)) from None

    providers = {name: _find_provider(module, name, display) for name in PROVIDERS}
    ep = EntryPoint(path=path, files=files, module=module, default_batch_size=0, **providers)
    ep.default_batch_size = _check_signatures(ep)
    return ep


def _format_syntax_error(exc: SyntaxError, display: str) -> str:
    text = f'  File "{display}", line {exc.lineno}\n'
    if exc.text:
        text += f"    {exc.text.rstrip()}\n"
        if exc.offset:
            text += "    " + " " * (exc.offset - 1 - (len(exc.text) - len(exc.text.lstrip()))) + "^\n"
    return text + f"SyntaxError: {exc.msg}"


def _find_provider(module: ModuleType, name: str, display: str) -> Callable[..., Any]:
    for prefix in PREFIXES:
        func: object = getattr(module, f"{prefix}_{name}", None)
        if func is not None:
            if not callable(func):
                raise fail("entry_point", f"{prefix}_{name} in {display} is not a function", file=display,
                           function=f"{prefix}_{name}")
            return func
    raise fail("entry_point",
               f"{display} has no skyline_{name}() (define it at the top level of the entry point)",
               file=display, function=f"skyline_{name}")


def _check_signatures(ep: EntryPoint) -> int:
    def check(func: Callable[..., Any]) -> inspect.Signature:
        try:
            return inspect.signature(func)
        except (TypeError, ValueError):
            file, line = ep.where(func)
            raise fail("entry_point", f"cannot read the signature of {func.__name__}", file=file, line=line,
                       function=func.__name__) from None

    model_sig = check(ep.model_provider)
    required = [p for p in model_sig.parameters.values()
                if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise _signature_error(ep, ep.model_provider, "must take no parameters, "
                               f"but requires {', '.join(p.name for p in required)}")

    input_sig = check(ep.input_provider)
    params = list(input_sig.parameters.values())
    if not params or params[0].name != "batch_size":
        names = ", ".join(p.name for p in params) or "nothing"
        raise _signature_error(ep, ep.input_provider,
                               f"must take exactly one parameter named batch_size, then optional knobs with "
                               f"defaults (it takes {names})")
    for knob in params[1:]:
        if knob.default is inspect.Parameter.empty and knob.kind not in (knob.VAR_POSITIONAL, knob.VAR_KEYWORD):
            raise _signature_error(ep, ep.input_provider,
                                   f"takes {knob.name} after batch_size: a knob needs a default ({knob.name}=...)")
    default = params[0].default
    if default is inspect.Parameter.empty or isinstance(default, bool) or not isinstance(default, int):
        raise _signature_error(ep, ep.input_provider,
                               "needs an int default for batch_size (e.g. batch_size=32): "
                               "that default is the batch size profiled")
    if default < 1:
        raise _signature_error(ep, ep.input_provider, f"batch_size default must be at least 1 (it is {default})")

    iteration_sig = check(ep.iteration_provider)
    positional = [p for p in iteration_sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    if len(required) > 1 or not positional:
        raise _signature_error(ep, ep.iteration_provider, "must take exactly one parameter: the model")
    return default


def _signature_error(ep: EntryPoint, func: Callable[..., Any], problem: str) -> ProfileError:
    file, line = ep.where(func)
    return fail("entry_point", f"{func.__name__}() {problem}", file=file, line=line, function=func.__name__)


def call_provider(ep: EntryPoint, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a provider, turning the user's exception into an error that names the provider."""
    try:
        return func(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001
        info = from_exception(exc, ep.files, function=func.__name__)
        if info.file is None:
            file, line = ep.where(func)
            info = type(info)(**{**info.__dict__, "file": file, "line": line})
        raise ProfileError(info) from None


def knobs_for(func: Callable[..., Any], knobs: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The knobs ``func`` declares as keyword parameters (each knob goes to every provider that takes it)."""
    if not knobs:
        return {}
    params = inspect.signature(func).parameters
    return {name: value for name, value in knobs.items() if name in params
            and params[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def make_inputs(ep: EntryPoint, batch_size: int, knobs: Optional[dict[str, Any]] = None) -> tuple[Any, ...]:
    """Call the input provider at ``batch_size`` however its first parameter is declared
    (``batch_size=32``, ``*, batch_size=32`` or ``batch_size=32, /``), with the knobs it declares, and
    check what it returns."""
    param = next(iter(inspect.signature(ep.input_provider).parameters.values()))
    extra = knobs_for(ep.input_provider, {k: v for k, v in (knobs or {}).items() if k != "batch_size"})
    if param.kind is inspect.Parameter.KEYWORD_ONLY:
        raw = call_provider(ep, ep.input_provider, batch_size=batch_size, **extra)
    else:
        raw = call_provider(ep, ep.input_provider, batch_size, **extra)
    return check_inputs(ep, raw)


def check_inputs(ep: EntryPoint, inputs: Any) -> tuple[Any, ...]:
    func = ep.input_provider
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs)
    file, line = ep.where(func)
    kind = type(inputs).__module__ + "." + type(inputs).__qualname__
    hint = " (wrap a single tensor as (tensor,))" if kind.startswith("torch.") else ""
    raise fail("entry_point", f"{func.__name__}() must return a tuple or list of inputs, not {kind}{hint}",
               file=file, line=line, function=func.__name__)


def check_model(ep: EntryPoint, model: Any) -> Any:
    import torch

    if not isinstance(model, torch.nn.Module):
        file, line = ep.where(ep.model_provider)
        kind = type(model).__module__ + "." + type(model).__qualname__
        raise fail("entry_point", f"{ep.model_provider.__name__}() must return a torch.nn.Module, not {kind}",
                   file=file, line=line, function=ep.model_provider.__name__)
    return model


def check_iteration(ep: EntryPoint, iteration: object) -> Callable[..., Any]:
    if not callable(iteration):
        file, line = ep.where(ep.iteration_provider)
        raise fail("entry_point", f"{ep.iteration_provider.__name__}() must return a callable "
                   f"iteration(*inputs), not {type(iteration).__name__}", file=file, line=line,
                   function=ep.iteration_provider.__name__)
    return iteration


def check_arity(ep: EntryPoint, iteration: Callable[..., Any], inputs: tuple[Any, ...]) -> None:
    """The iteration is called as ``iteration(*inputs)``: say so before running it if it cannot take them
    (a TypeError from the call itself would point at no line of the user's)."""
    try:
        signature = inspect.signature(iteration)
    except (TypeError, ValueError):  # a builtin or C callable: let the call decide
        return
    try:
        signature.bind(*inputs)
    except TypeError as exc:
        name = getattr(iteration, "__name__", type(iteration).__name__)
        file, line = ep.where(iteration)
        count = f"{len(inputs)} input" + ("" if len(inputs) == 1 else "s")
        raise fail("entry_point", f"{name}{signature} (returned by {ep.iteration_provider.__name__}()) cannot be "
                   f"called with the {count} that {ep.input_provider.__name__}() returns: {exc}",
                   file=file, line=line, function=name) from None
