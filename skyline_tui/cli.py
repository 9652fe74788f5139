"""Command line: ``skyline-tui ENTRY`` opens the app (or, with ``--json PATH|-``, writes the report
headlessly); ``skyline-tui VERB ...`` runs another verb.  Each verb is a module of ``skyline_tui.commands``,
listed once in :data:`COMMANDS`; this module only builds each verb's parser and dispatches.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from skyline_tui.commands import Command, diff, history, profile, run, sweep

# Every verb, the default first (``skyline-tui ENTRY``, no word); the others by the word after ``skyline-tui``.
# A verb's module imports its heavy parts inside ``run``, so listing it here slows no other verb's start.
COMMANDS: list[Command] = [
    profile.ProfileCommand(),
    history.HistoryCommand(),
    diff.DiffCommand(),
    sweep.SweepCommand(),
    run.RunCommand(),
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = {command.name: command for command in COMMANDS[1:]}
    command = named.get(argv[0]) if argv else None
    if command is not None:
        argv = argv[1:]
    else:
        command = COMMANDS[0]
    parser = build_parser(command.name)
    return int(command.run(command.parse(parser, argv), parser))


def build_parser(verb: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of ``verb`` (default: the default verb's, whose ``--help`` lists the others)."""
    command = COMMANDS[0] if verb is None else next(c for c in COMMANDS if c.name == verb)
    default = command is COMMANDS[0]
    parser = argparse.ArgumentParser(
        prog="skyline-tui" if default else f"skyline-tui {command.name}", description=command.description,
        epilog=_verbs_epilog() if default else None,
        formatter_class=argparse.RawDescriptionHelpFormatter if command.raw_description else argparse.HelpFormatter,
    )
    command.prepare_parser(parser)
    return parser


def _verbs_epilog() -> str:
    others = COMMANDS[1:]
    if not others:
        return ""
    width = max(len(command.name) for command in others)
    rows = [f"  skyline-tui {command.name:<{width}}  {command.summary}" for command in others]
    return "other commands (each has its own --help):\n" + "\n".join(rows)
