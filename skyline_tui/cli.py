"""Command line: ``skyline-tui ENTRY`` opens the app; ``--json PATH|-`` writes the report headlessly.

The ``--json`` path never imports textual (nor torch: profiling happens in the worker process).  With
``--json -`` nothing but the JSON goes to stdout; the user's output and our progress go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from typing import Optional, Sequence, TextIO

from skyline_tui import __version__
from skyline_tui.config import INTERACTIVE_THROUGHPUT_BUDGET_S, ProfileConfig
from skyline_tui.report import ErrorInfo, Report

EXIT_OK, EXIT_PROFILE_ERROR, EXIT_USAGE = 0, 1, 2

# Verbs beside the default ``skyline-tui ENTRY``: name -> (module, function(argv) -> exit status, summary).
# Each module is imported only when its verb is used, so no verb slows the others' start.
VERBS: dict[str, tuple[str, str, str]] = {
    "history": ("skyline_tui.history.commands", "history_main", "list recorded profile runs, newest first"),
    "diff": ("skyline_tui.history.commands", "diff_main", "what changed between two runs, line by line"),
    "sweep": ("skyline_tui.sweep.commands", "main", "profile a grid of configurations"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyline-tui",
        description="Profile the training performance of a PyTorch model (a Skyline entry point).",
        epilog=_verbs_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("entry", help="the entry point: a Python file defining skyline_model_provider, "
                                      "skyline_input_provider and skyline_iteration_provider")
    parser.add_argument("--json", metavar="PATH", help="profile once, headless, and write the JSON report to "
                                                       "PATH ('-' for stdout)")
    parser.add_argument("--root", metavar="DIR", help="project root: what is watched and counted as project "
                                                      "code (default: the entry point's folder)")
    parser.add_argument("--batch-size", type=_positive_int, metavar="N",
                        help="profile at this batch size instead of the input provider's default")
    parser.add_argument("--timeout", type=_positive_float, default=ProfileConfig.timeout_s, metavar="S",
                        help="stop a run that takes longer than S seconds (default: %(default)g)")
    parser.add_argument("--throughput-budget", type=_positive_float, metavar="S",
                        help="time spent measuring throughput at most (default: "
                             f"{ProfileConfig.throughput_budget_s:g} with --json, "
                             f"{INTERACTIVE_THROUGHPUT_BUDGET_S:g} in the app, where a save re-profiles)")
    parser.add_argument("--predictions-budget", type=_positive_float,
                        default=ProfileConfig.predictions_budget_s, metavar="S",
                        help="time spent measuring other batch sizes at most (default: %(default)g)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the run-time breakdown")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory breakdown")
    parser.add_argument("--no-predictions", action="store_true", help="skip the batch-size predictions")
    parser.add_argument("--write-batch-size", type=_positive_int, metavar="N",
                        help="set the input provider's default batch size to N in the entry point, then exit")
    parser.add_argument("--no-watch", action="store_true", help="app: do not re-profile when a file is saved")
    parser.add_argument("--history", metavar="PATH", help="record each run in this history store (default: "
                        "$SKYLINE_TUI_HISTORY, else <project root>/.skyline-tui/history.db)")
    parser.add_argument("--no-history", action="store_true", help="record nothing in the history store")
    parser.add_argument("-q", "--quiet", action="store_true", help="--json: no progress lines on stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _verbs_epilog() -> str:
    if not VERBS:
        return ""
    width = max(len(name) for name in VERBS)
    rows = [f"  skyline-tui {name:<{width}}  {summary}" for name, (_m, _f, summary) in VERBS.items()]
    return "other commands (each has its own --help):\n" + "\n".join(rows)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def config_from_args(args: argparse.Namespace, interactive: bool = False) -> ProfileConfig:
    """The run's config; ``interactive`` (the app) starts from budgets that give the first number sooner."""
    base = ProfileConfig.interactive() if interactive else ProfileConfig()
    changes = dict(
        batch_size=args.batch_size, timeout_s=args.timeout, predictions_budget_s=args.predictions_budget,
        breakdown=not args.no_breakdown, memory=not args.no_memory, predictions=not args.no_predictions,
    )
    if args.throughput_budget is not None:
        changes["throughput_budget_s"] = args.throughput_budget
    return base.replace(**changes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in VERBS:
        module, function, _summary = VERBS[argv[0]]
        return int(getattr(importlib.import_module(module), function)(argv[1:]))
    args = build_parser().parse_args(argv)
    if args.write_batch_size is not None:
        return write_batch_size_command(args.entry, args.write_batch_size)
    if args.json is not None:
        return json_command(args.entry, args.root, config_from_args(args), args.json, quiet=args.quiet,
                            history=args.history, no_history=args.no_history)
    problem = _check_entry(args.entry, args.root)
    if problem is not None:
        print(f"skyline-tui: {problem.message}", file=sys.stderr)
        return EXIT_USAGE
    from skyline_tui.tui.launch import run_app  # textual is imported only here

    from skyline_tui.history import resolve_history_path

    project_root = os.path.abspath(args.root) if args.root else os.path.dirname(os.path.abspath(args.entry))
    return run_app(args.entry, args.root, config_from_args(args, interactive=True), watch=not args.no_watch,
                   history_path=resolve_history_path(args.history, args.no_history, project_root))


def _check_entry(entry: str, root: Optional[str]) -> Optional[ErrorInfo]:
    from skyline_tui.profiler.entry import resolve_paths  # torch-free
    from skyline_tui.profiler.errors import ProfileError

    try:
        resolve_paths(entry, root)
    except ProfileError as exc:
        return exc.info
    return None


def json_command(entry: str, root: Optional[str], config: ProfileConfig, destination: str,
                 quiet: bool = False, history: Optional[str] = None, no_history: bool = False) -> int:
    from skyline_tui.worker import protocol as p
    from skyline_tui.worker.client import profile_once

    err = sys.stderr
    problem = _check_entry(entry, root)
    if problem is not None:
        report = Report(entry_point=entry, project_root=root or "", error=problem)
    else:
        def on_event(event: p.Event) -> None:
            if isinstance(event, p.RunLog):
                err.write(event.text)
                err.flush()
            elif isinstance(event, p.RunReport) and not event.final and not quiet:
                err.write(f"skyline-tui: {event.phase} done\n")
                err.flush()

        report = profile_once(entry, root, config, on_event=on_event)
    try:
        write_report(report, destination, sys.stdout)
    except OSError as exc:
        print(f"skyline-tui: cannot write {destination}: {exc.strerror or exc}", file=err)
        return EXIT_PROFILE_ERROR
    _record_in_history(report, config, history, no_history, err)
    if report.error is not None:
        print(format_error(report.error), file=err)
        return EXIT_PROFILE_ERROR
    if not quiet and destination != "-":
        print(f"skyline-tui: report written to {destination}", file=err)
    return EXIT_OK


def _record_in_history(report: Report, config: ProfileConfig, history: Optional[str], no_history: bool,
                       err: TextIO) -> None:
    """After the report is out: a store that cannot be written costs one warning line, never the report."""
    from skyline_tui.history import record_safely, resolve_history_path

    path = resolve_history_path(history, no_history, report.project_root)
    record_safely(report, path, config=config.to_dict(), stream=err)


def write_report(report: Report, destination: str, stdout: TextIO) -> None:
    text = report.to_json() + "\n"
    if destination == "-":
        stdout.write(text)
        stdout.flush()
        return
    if os.path.exists(destination) and not os.path.isfile(destination):
        # /dev/null, a FIFO, /dev/stderr...: write through; renaming over it would replace the device.
        with open(destination, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    # Atomic: a reader (or a CI step) never sees half a report.
    folder = os.path.dirname(os.path.abspath(destination))
    fd, tmp = tempfile.mkstemp(prefix=".skyline-report-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, destination)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def format_error(error: ErrorInfo) -> str:
    where = f"{error.file}:{error.line}" if error.file and error.line else (error.file or "")
    lines = [f"skyline-tui: {error.kind} error" + (f" at {where}" if where else "") + f": {error.message}"]
    if error.traceback and error.traceback.strip() != error.message.strip():
        lines.append(error.traceback.rstrip())
    return "\n".join(lines)


def write_batch_size_command(entry: str, batch_size: int, out: TextIO = sys.stderr) -> int:
    from skyline_tui.rewrite import RewriteError, write_batch_size

    try:
        write_batch_size(entry, batch_size)
    except RewriteError as exc:
        print(f"skyline-tui: {exc}", file=out)
        return EXIT_PROFILE_ERROR
    print(f"skyline-tui: batch size set to {batch_size} in {entry}", file=out)
    return EXIT_OK
