"""``skyline-tui run [OPTIONS] SCRIPT [ARGS...]``: a training script run unchanged and watched step by step.

Its arguments and its work are ``skyline_tui.run.command``'s, imported only when this verb is used.
"""

from __future__ import annotations

import argparse

from skyline_tui.commands import Command


class RunCommand(Command):
    name = "run"
    summary = "run a training script unchanged and watch it step by step"
    description = ("Run a training script unchanged and watch it step by step: step time and its phases, "
                   "samples/s, the loss, memory, and per-layer health every N steps.")

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        from skyline_tui.run.command import prepare_parser

        prepare_parser(parser)

    def parse(self, parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
        from skyline_tui.run.command import parse

        return parse(parser, argv)

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        """The live view with a terminal (Textual imported only then), else headless."""
        from skyline_tui.run import command

        if not command.wants_live_view(args):
            return command.run(args, parser)
        from skyline_tui.tui.run_launch import run_live

        return run_live(args, parser)
