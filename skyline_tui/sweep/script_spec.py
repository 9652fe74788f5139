"""A sweep file for a training script: every key must be one of the script's own options.

The grid is read as for a profile sweep (``spec.parse_spec``: constants and ``grid_search`` lists, the
cross product in file order), with no built-in knobs.  Then the script's parser is read by running the
script up to its ``parse_args`` in a subprocess (``script_probe``), nothing trained, and every trial's
arguments are put to that parser: a key it does not take, a flag given a number, a value it refuses
(``invalid choice``), an argument it requires that the grid does not give, each is a :class:`SpecError`
naming the file, line and key, before any trial runs.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml  # type: ignore[import-untyped]

from skyline_tui.sweep.script_options import (
    KnobError,
    ScriptOption,
    knob_arguments,
    option_for,
)
from skyline_tui.sweep.spec import SpecError, SweepSpec, parse_spec

PROBE_TIMEOUT_S = 120.0  # a script that imports torch and builds its parser takes seconds, not minutes
_ARGPARSE_NAMES = {"argparse", "ArgumentParser", "parse_args", "parse_known_args"}


@dataclass(frozen=True)
class ScriptTrial:
    index: int  # 0-based, in the spec's cross-product order
    knobs: dict[str, Any]
    argv: tuple[str, ...]  # the script's arguments: the fixed ones, then the knobs'


@dataclass(frozen=True)
class ScriptSweepSpec:
    spec: SweepSpec
    options: tuple[ScriptOption, ...]
    trials: tuple[ScriptTrial, ...]


def load_script_spec(spec_path: str, script: str, args: list[str], cwd: Optional[str] = None,
                     timeout_s: float = PROBE_TIMEOUT_S) -> ScriptSweepSpec:
    try:
        text = Path(spec_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {spec_path}: {getattr(exc, 'strerror', None) or exc}") from None
    spec = parse_spec(text, spec_path, accepted=None, builtins=())
    name = os.path.basename(script)
    if not mentions_argparse(script):
        raise SpecError(f"{name} reads no command-line options with argparse (no ArgumentParser or parse_args in "
                        f"it or in a module of its own it imports), so it cannot take the knobs of {spec_path}")
    combos = spec.trials()
    probe = probe_parser(script, args, combos, cwd, timeout_s)
    options = [ScriptOption.from_dict(o) for o in probe["options"]]
    lines = knob_lines(text)
    for key in spec.knobs:
        if option_for(key, options) is None:
            known = ", ".join(sorted(o.long for o in options)) or "none"
            raise SpecError(f"{spec_path}, line {lines.get(key, 0)}: unknown knob {key!r}: {name} has no option "
                            f"--{key.replace('_', '-')} (its options: {known})")
    trials = []
    for index, (knobs, verdict) in enumerate(zip(combos, probe["verdicts"], strict=True)):
        try:
            argv = [*args, *knob_arguments(knobs, options)]
        except KnobError as exc:
            key = str(exc).split("'")[1]
            raise SpecError(f"{spec_path}, line {lines.get(key, 0)}: {exc}") from None
        if verdict is not None:
            raise SpecError(_refusal(spec_path, name, lines, knobs, options, verdict))
        trials.append(ScriptTrial(index=index, knobs=dict(knobs), argv=tuple(argv)))
    return ScriptSweepSpec(spec=spec, options=tuple(options), trials=tuple(trials))


def _refusal(spec_path: str, name: str, lines: dict[str, int], knobs: dict[str, Any],
             options: list[ScriptOption], message: str) -> str:
    """The script's parser refused a trial's argv: name the key when its message names an option."""
    named = re.match(r"argument ([^:]+):", message)
    if named:
        strings = set(named.group(1).split("/"))
        for key, value in knobs.items():
            option = option_for(key, options)
            if option is not None and strings & set(option.strings):
                return f"{spec_path}, line {lines.get(key, 0)}: {key}={value!r}: {name} refuses it: {message}"
    return f"{spec_path}: {name} refuses the arguments of trial {knobs}: {message}"


def defines_providers(path: str) -> bool:
    """Whether ``path`` is a Skyline entry point (a provider at top level) rather than a training script.
    A file that does not parse counts as an entry point: the profile sweep names its syntax error."""
    from skyline_tui.sweep.spec import PROVIDER_PREFIXES, PROVIDER_SUFFIXES

    names = {f"{prefix}_{suffix}" for prefix in PROVIDER_PREFIXES for suffix in PROVIDER_SUFFIXES}
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return True
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names
               for node in tree.body)


def knob_lines(text: str) -> dict[str, int]:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _value in root.value}


def mentions_argparse(script: str) -> bool:
    """Whether the script, or a module of its own folder that it imports (``from config import get_args``),
    names argparse at all: a script that never reaches ``parse_args`` would otherwise run to its end (and
    train) under the probe."""
    folder = Path(script).resolve().parent
    todo, seen = [Path(script).resolve()], set()  # type: list[Path], set[Path]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in _ARGPARSE_NAMES:
                return True
            if isinstance(node, ast.Attribute) and node.attr in _ARGPARSE_NAMES:
                return True
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                if module.split(".")[0] in _ARGPARSE_NAMES:
                    return True
                local = folder.joinpath(*module.split("."))
                todo += [p for p in (local.with_suffix(".py"), local / "__init__.py") if p.is_file()]
    return False


def probe_parser(script: str, args: list[str], trials: list[dict[str, Any]], cwd: Optional[str],
                 timeout_s: float) -> dict[str, Any]:
    """Run the script up to its parse_args in a subprocess (its own session: on a timeout the whole group
    goes) and return what the probe wrote; raises SpecError when the script never got there."""
    name = os.path.basename(script)
    with tempfile.TemporaryDirectory(prefix="skyline-probe-") as folder:
        request, out = os.path.join(folder, "request.json"), os.path.join(folder, "out.json")
        with open(request, "w", encoding="utf-8") as fh:
            json.dump({"script": os.path.abspath(script), "args": args, "trials": trials, "out": out}, fh,
                      default=str)
        env = dict(os.environ, SKYLINE_TUI_TRACK="off")
        process = subprocess.Popen([sys.executable, "-m", "skyline_tui.sweep.script_probe", request], cwd=cwd,
                                   env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise SpecError(f"{name} did not reach its parse_args within {timeout_s:g} s; its options could not be "
                            "read") from None
        except BaseException:
            _kill_group(process)
            raise
        if os.path.isfile(out):
            with open(out, encoding="utf-8") as fh:
                result: dict[str, Any] = json.load(fh)
            if result.get("parsed"):
                return result
            raise SpecError(f"{name} ran to its end without calling argparse's parse_args; its options could "
                            "not be read")
    tail = [line for line in stderr.strip().splitlines() if line.strip()][-1:] or [f"exit status {process.returncode}"]
    raise SpecError(f"{name} failed before its parse_args, so its options could not be read: {tail[0]}")


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
