"""``skyline-tui diff [A [B]]``: what changed between two runs: two profiles line by line, two training runs figure
by figure (the judging is comparison/'s)."""

from __future__ import annotations

import argparse

from skyline_tui.commands import Command
from skyline_tui.commands.flags import add_store

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class DiffCommand(Command):
    name = "diff"
    summary = "what changed between two runs (two profiles, or two training runs)"
    description = ("What changed between two runs (A before, B after). A and B are run ids or report JSON files; "
                   "with one, B is the newest run of A's entry point; with none, the last two runs of the newest "
                   "entry point in the store. Two training runs (skyline-tui run) are compared by throughput, "
                   "step time, phases, memory and final loss; a profile and a training run are not compared.")

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("runs", nargs="*", metavar="A|B", help="a run id or a report JSON file")
        add_store(parser)
        parser.add_argument("--json", action="store_true", help="print the diff as JSON")

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        import json
        import sys

        from skyline_tui.comparison.train_diff import TrainDiff
        from skyline_tui.history.lookup import KindMismatch, LookupProblem, resolve_diff
        from skyline_tui.history.store import HistoryError
        from skyline_tui.history.text import diff_text, train_diff_text

        if len(args.runs) > 2:
            parser.error("at most two runs (A and B)")
        try:
            result = resolve_diff(args.runs, args.history)
        except (LookupProblem, HistoryError) as exc:
            print(f"skyline-tui: {exc}", file=sys.stderr)
            return EXIT_USAGE if isinstance(exc, KindMismatch) else EXIT_ERROR
        if args.json:
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        else:
            sys.stdout.write(train_diff_text(result) if isinstance(result, TrainDiff) else diff_text(result))
        return EXIT_OK
