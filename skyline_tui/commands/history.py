"""``skyline-tui history [ENTRY]``: the recorded runs, newest first, as a table or JSON."""

from __future__ import annotations

import argparse

from skyline_tui.commands import Command
from skyline_tui.commands.flags import add_store

EXIT_OK, EXIT_ERROR = 0, 1
DEFAULT_LIMIT = 20  # the table; --json lists every run unless --limit says otherwise
JSON_FIELDS = ("id", "created_at", "entry_point", "project_root", "batch_size", "device", "torch_version",
               "samples_per_second", "iteration_ms", "iteration_ms_stdev", "peak_bytes", "error_kind", "status",
               "git_commit", "git_dirty", "source_hash", "sweep_id", "config", "knobs", "kind", "argv", "steps",
               "exit_code", "final_loss")


class HistoryCommand(Command):
    name = "history"
    summary = "list recorded profile runs, newest first"
    description = "List recorded profile runs, newest first."

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("entry", nargs="?", help="only the runs of this entry point")
        add_store(parser)
        parser.add_argument("--limit", type=int, metavar="N", help=f"at most N runs (default: {DEFAULT_LIMIT} "
                                                                   "in the table, all with --json; 0: all)")
        parser.add_argument("--json", action="store_true", help="print a JSON array of runs")

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        import json
        import sys

        from skyline_tui.history.lookup import LookupProblem, find_store, open_store
        from skyline_tui.history.store import HistoryError
        from skyline_tui.history.text import history_table

        limit = args.limit if args.limit is not None else (None if args.json else DEFAULT_LIMIT)
        try:
            with open_store(find_store(args.history, args.entry)) as history:
                runs = history.runs(args.entry, limit=limit or None)
        except (LookupProblem, HistoryError) as exc:
            print(f"skyline-tui: {exc}", file=sys.stderr)
            return EXIT_ERROR
        if args.json:
            sys.stdout.write(json.dumps([{k: run[k] for k in JSON_FIELDS} for run in runs], indent=2) + "\n")
        else:
            sys.stdout.write(history_table(runs))
        return EXIT_OK
