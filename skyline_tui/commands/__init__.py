"""The command line's verbs: one module per verb, each a :class:`Command`, listed once in ``cli.COMMANDS``.

A verb declares its arguments (``prepare_parser``) and runs (``run``); ``cli.main`` builds the parser and
dispatches.  A verb module imports only argparse-level things at its top: everything heavy (the worker
client, the history store, Rich, Textual) is imported inside ``run``, so ``skyline-tui --help`` and each
verb start as fast as one verb alone, and the headless verbs never load textual nor torch.  Adding a verb:
one module here, one entry in ``cli.COMMANDS``.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod


class Command(ABC):
    name: str  # the word after ``skyline-tui`` (the default verb's is only its name: it takes no word)
    summary: str  # one line in ``skyline-tui --help``
    description: str  # the verb's own ``--help``
    raw_description = False  # keep the description's line breaks (a long, hand-wrapped text)

    @abstractmethod
    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Declare the verb's arguments on ``parser``."""

    def parse(self, parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
        """The arguments from ``argv``; a verb whose tail belongs to someone else (a script's own argv)
        parses its own way."""
        return parser.parse_args(argv)

    @abstractmethod
    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        """Do the verb's work; returns the exit status (``parser.error`` for a usage mistake)."""
