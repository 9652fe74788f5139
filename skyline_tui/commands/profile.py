"""``skyline-tui ENTRY``, the default verb: the app; ``--json PATH|-`` the same profile headless, for scripts
and CI; ``--write-batch-size N`` edits the entry point.

The ``--json`` path never imports textual (nor torch: profiling happens in the worker process).  With
``--json -`` nothing but the JSON goes to stdout; the user's output and our progress go to stderr.

Exit status of a ``--json`` run: 0 ok, 1 the profile failed, 2 bad usage (found before profiling), 3 a
``--fail-if`` budget or the ``--baseline`` comparison failed (the report is written all the same).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Optional

from skyline_tui.argtypes import positive_float, positive_int
from skyline_tui.commands import Command
from skyline_tui.commands.flags import add_breakdown, add_quiet, add_recording, add_root, add_timeout
from skyline_tui.config import INTERACTIVE_THROUGHPUT_BUDGET_S, ProfileConfig
from skyline_tui.version import __version__

if TYPE_CHECKING:
    from skyline_tui.checks import RunChecks
    from skyline_tui.report import ErrorInfo, Report

EXIT_OK, EXIT_PROFILE_ERROR, EXIT_USAGE, EXIT_CHECK_FAILED = 0, 1, 2, 3


class ProfileCommand(Command):
    name = "profile"
    summary = "profile ENTRY: the app, or --json for a headless report"
    description = "Profile the training performance of a PyTorch model (a Skyline entry point)."
    raw_description = True  # the list of the other verbs below the options keeps its lines

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("entry", help="the entry point: a Python file defining skyline_model_provider, "
                                          "skyline_input_provider and skyline_iteration_provider")
        parser.add_argument("--json", metavar="PATH", help="profile once, headless, and write the JSON report "
                                                           "to PATH ('-' for stdout)")
        add_root(parser)
        parser.add_argument("--batch-size", type=positive_int, metavar="N",
                            help="profile at this batch size instead of the input provider's default")
        add_timeout(parser)
        parser.add_argument("--throughput-budget", type=positive_float, metavar="S",
                            help="time spent measuring throughput at most (default: "
                                 f"{ProfileConfig.throughput_budget_s:g} with --json, "
                                 f"{INTERACTIVE_THROUGHPUT_BUDGET_S:g} in the app, where a save re-profiles)")
        parser.add_argument("--predictions-budget", type=positive_float,
                            default=ProfileConfig.predictions_budget_s, metavar="S",
                            help="time spent measuring other batch sizes at most (default: %(default)g)")
        add_breakdown(parser, default=True)
        parser.add_argument("--no-memory", action="store_true", help="skip the memory breakdown")
        parser.add_argument("--no-health", action="store_true",
                            help="skip the training-health phase (per-layer gradients, updates, activations)")
        parser.add_argument("--health-budget", type=positive_float, metavar="S",
                            help="time spent on the health phase's iterations at most (default: "
                                 f"{ProfileConfig.health_budget_s:g}; stretched up to 3x until the 5 iterations "
                                 "a median needs have run)")
        parser.add_argument("--no-predictions", action="store_true", help="skip the batch-size predictions")
        parser.add_argument("--write-batch-size", type=positive_int, metavar="N",
                            help="set the input provider's default batch size to N in the entry point, then exit")
        parser.add_argument("--no-watch", action="store_true", help="app: do not re-profile when a file is saved")
        parser.add_argument("--fail-if", action="append", default=[], metavar="EXPR",
                            help="--json: exit 3 when the report meets EXPR, 'METRIC OP VALUE' such as "
                                 "'peak_memory > 2GiB' or 'iteration_ms > 50ms' (repeatable)")
        parser.add_argument("--baseline", metavar="FILE",
                            help="--json: exit 3 when throughput, iteration time or peak memory is worse than in "
                                 "this report by more than --max-regression and by more than both runs' noise")
        parser.add_argument("--max-regression", type=float, metavar="PCT",
                            help="--baseline: the regression allowed, in percent (default: 10)")
        parser.add_argument("--trace", metavar="PATH",
                            help="--json: also write one profiled iteration as a Chrome trace (Perfetto, "
                                 "chrome://tracing)")
        add_recording(parser)
        add_quiet(parser, "--json: no progress lines on stderr")
        parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        if args.write_batch_size is not None:
            return write_batch_size_command(args.entry, args.write_batch_size)
        ci_flags = [flag for flag, value in (("--fail-if", args.fail_if), ("--baseline", args.baseline),
                                             ("--max-regression", args.max_regression), ("--trace", args.trace))
                    if value not in (None, [])]
        if args.json is None and ci_flags:
            print(f"skyline-tui: {ci_flags[0]} needs --json (a headless run)", file=sys.stderr)
            return EXIT_USAGE
        if args.json is not None:
            return _headless(args)
        return _app(args)


def _headless(args: argparse.Namespace) -> int:
    from skyline_tui.checks import CheckError
    from skyline_tui.headless import history_to_read, prepare_run_checks
    from skyline_tui.history.lookup import with_learned_drift

    config = with_learned_drift(config_from_args(args), history_to_read(args.entry, args.root, args.history),
                                args.entry)
    try:
        checks = prepare_run_checks(args.entry, args.root, config, args.fail_if, args.baseline,
                                    args.max_regression, history=args.history)
    except CheckError as exc:
        print(f"skyline-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return json_command(args.entry, args.root, config, args.json, quiet=args.quiet, checks=checks,
                        history=args.history, no_history=args.no_history)


def _app(args: argparse.Namespace) -> int:
    from skyline_tui.history import resolve_history_path
    from skyline_tui.project import entry_problem, project_root

    problem = entry_problem(args.entry, args.root)
    if problem is not None:
        print(f"skyline-tui: {problem.message}", file=sys.stderr)
        return EXIT_USAGE
    if not sys.stdout.isatty():  # piped, a script, a CI job: the app would draw escape codes and wait forever
        print("skyline-tui: stdout is not a terminal; use --json PATH (or --json -) to profile headless",
              file=sys.stderr)
        return EXIT_USAGE
    from skyline_tui.tui.launch import run_app  # textual is imported only here

    root = project_root(args.entry, args.root)  # the store the --json runs of this entry record into too
    return run_app(args.entry, args.root, config_from_args(args, interactive=True), watch=not args.no_watch,
                   history_path=resolve_history_path(args.history, args.no_history, root))


def config_from_args(args: argparse.Namespace, interactive: bool = False) -> ProfileConfig:
    """The run's config; ``interactive`` (the app) starts from budgets that give the first number sooner."""
    base = ProfileConfig.interactive() if interactive else ProfileConfig()
    changes = dict(
        batch_size=args.batch_size, timeout_s=args.timeout, predictions_budget_s=args.predictions_budget,
        breakdown=args.breakdown, memory=not args.no_memory, health=not args.no_health,
        predictions=not args.no_predictions,
    )
    if args.throughput_budget is not None:
        changes["throughput_budget_s"] = args.throughput_budget
    if args.health_budget is not None:
        changes["health_budget_s"] = args.health_budget
    if getattr(args, "trace", None):
        from skyline_tui.headless import trace_path

        changes["trace_path"] = trace_path(args.trace)
    return base.replace(**changes)


def write_batch_size_command(entry: str, batch_size: int) -> int:
    from skyline_tui.rewrite import RewriteError, write_batch_size

    try:
        write_batch_size(entry, batch_size)
    except RewriteError as exc:
        print(f"skyline-tui: {exc}", file=sys.stderr)
        return EXIT_PROFILE_ERROR
    print(f"skyline-tui: batch size set to {batch_size} in {entry}", file=sys.stderr)
    return EXIT_OK


def json_command(entry: str, root: Optional[str], config: ProfileConfig, destination: str,
                 quiet: bool = False, checks: Optional[RunChecks] = None, history: Optional[str] = None,
                 no_history: bool = False) -> int:
    """``skyline-tui ENTRY --json DESTINATION``: one headless profile, the report written the moment it is in,
    then recorded, warned about and checked; returns the exit status."""
    from skyline_tui.checks import RunChecks
    from skyline_tui.export.report_json import write_report
    from skyline_tui.headless import profile_headless
    from skyline_tui.history import record_run, resolve_history_path
    from skyline_tui.presentation import machine_warnings
    from skyline_tui.worker import protocol as p

    began = time.monotonic()
    checks = checks or RunChecks()
    err = sys.stderr
    write_errors: list[OSError] = []

    def write(report: Report) -> None:
        try:
            write_report(report, destination, sys.stdout)
        except OSError as exc:
            write_errors.append(exc)

    def on_event(event: p.Event) -> None:
        if isinstance(event, p.RunLog):
            err.write(event.text)
            err.flush()
        elif isinstance(event, p.RunReport) and not event.final and not quiet:
            # The time since the command began: where the wall clock of a run goes, phase by phase.
            err.write(f"skyline-tui: {event.phase} done at {time.monotonic() - began:.2f} s\n")
            err.flush()

    checked: list[Report] = []

    def on_final(final: Report) -> None:
        # Written the moment the final report arrives, while the worker is still shutting down.
        checked.append(checks.apply(final))
        write(checked[0])

    profile_headless(entry, root, config, on_event=on_event, on_final=on_final)
    report = checked[0]  # profile_headless calls on_final exactly once, whatever happens
    if write_errors:
        exc = write_errors[0]
        print(f"skyline-tui: cannot write {destination}: {exc.strerror or exc}", file=err)
        return EXIT_PROFILE_ERROR
    # After the report is out: a store that cannot be written costs one warning line, never the report.
    record_run(report, resolve_history_path(history, no_history, report.project_root), config=config.to_dict(),
               stream=err)
    for line in machine_warnings(report):
        print(line, file=err)
    if report.error is not None:
        print(format_error(report.error), file=err)
        return EXIT_PROFILE_ERROR
    if not quiet and destination != "-":
        print(f"skyline-tui: report written to {destination}", file=err)
    if not quiet and config.trace_path:
        print(f"skyline-tui: trace written to {config.trace_path}", file=err)
    failures = checks.failures(report)
    for line in failures:
        print(line, file=err)
    return EXIT_CHECK_FAILED if failures else EXIT_OK


def format_error(error: ErrorInfo) -> str:
    where = f"{error.file}:{error.line}" if error.file and error.line else (error.file or "")
    lines = [f"skyline-tui: {error.kind} error" + (f" at {where}" if where else "") + f": {error.message}"]
    if error.traceback and error.traceback.strip() != error.message.strip():
        lines.append(error.traceback.rstrip())
    return "\n".join(lines)
