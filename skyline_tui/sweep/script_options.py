"""A training script's command-line options, and a sweep knob turned into its arguments.

``lr: {grid_search: [0.01, 0.1]}`` gives ``--lr 0.01`` and ``--lr 0.1``; a boolean knob gives a flag
(``store_true``: present or absent; ``store_false``: present for false; ``--x/--no-x`` for
``BooleanOptionalAction``); a list gives several values (``nargs='+'``); null leaves the script's default.
A key names an option by its long form (``batch_size`` and ``batch-size`` both find ``--batch-size``) or by
its ``dest``.  Torch-free and yaml-free: the parser probe (in the script's process) imports this too.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from typing import Any, Optional

# What an option does with a knob's value (derived from its argparse action).
VALUE, TRUE_FLAG, FALSE_FLAG, BOTH_FLAGS, BARE_FLAG = "value", "store_true", "store_false", "true_false", "flag"


@dataclass(frozen=True)
class ScriptOption:
    strings: tuple[str, ...]  # e.g. ("-l", "--lr")
    dest: str
    kind: str  # one of VALUE, TRUE_FLAG, FALSE_FLAG, BOTH_FLAGS, BARE_FLAG

    @property
    def long(self) -> str:
        longs = [s for s in self.strings if s.startswith("--") and not s.startswith("--no-")]
        return max(longs, key=len) if longs else max(self.strings, key=len)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScriptOption:
        return cls(strings=tuple(data["strings"]), dest=str(data["dest"]), kind=str(data["kind"]))


class KnobError(ValueError):
    """A knob's value the option cannot take (e.g. a number for a flag); names the key."""


def options_of(parser: argparse.ArgumentParser) -> list[ScriptOption]:
    """The optional arguments a parser accepts (positionals take no knob; --help is not a knob)."""
    options = []
    for action in parser._actions:  # argparse's one record of what it accepts; no public view exists
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if isinstance(action, argparse._StoreTrueAction):
            kind = TRUE_FLAG
        elif isinstance(action, argparse._StoreFalseAction):
            kind = FALSE_FLAG
        elif isinstance(action, argparse.BooleanOptionalAction):
            kind = BOTH_FLAGS
        elif action.nargs == 0:
            kind = BARE_FLAG  # store_const, append_const, count
        else:
            kind = VALUE
        options.append(ScriptOption(strings=tuple(action.option_strings), dest=action.dest, kind=kind))
    return options


def option_for(key: str, options: list[ScriptOption]) -> Optional[ScriptOption]:
    spelled = {f"--{key}", f"--{key.replace('_', '-')}"}
    for option in options:
        if spelled & set(option.strings):
            return option
    dest = key.replace("-", "_")
    for option in options:
        if option.dest == dest:
            return option
    return None


def knob_arguments(knobs: dict[str, Any], options: list[ScriptOption]) -> list[str]:
    """The script's arguments for one trial, knobs in the spec's order.  Raises KeyError (the key) for a
    knob no option takes, KnobError for a value its option cannot take."""
    argv: list[str] = []
    for key, value in knobs.items():
        option = option_for(key, options)
        if option is None:
            raise KeyError(key)
        argv += _arguments(key, value, option)
    return argv


def _arguments(key: str, value: Any, option: ScriptOption) -> list[str]:
    flag = option.long
    if value is None:
        return []  # the script's own default
    if option.kind in (TRUE_FLAG, FALSE_FLAG, BARE_FLAG, BOTH_FLAGS):
        if not isinstance(value, bool):
            raise KnobError(f"{key!r} is {value!r}, but {flag} is a flag: its values are true or false")
        if option.kind == BOTH_FLAGS:
            return [flag if value else "--no-" + flag[2:]]
        present = value if option.kind != FALSE_FLAG else not value
        return [flag] if present else []
    if isinstance(value, list):
        return [flag, *(_text(item) for item in value)]
    if isinstance(value, dict):
        raise KnobError(f"{key!r} is a mapping; {flag} takes a value or a list of values")
    text = _text(value)
    # "--lr -1" would read -1 as an option when the parser has options that look like negative numbers.
    return [f"{flag}={text}"] if text.startswith("-") else [flag, text]


def _text(value: Any) -> str:
    return str(value)
