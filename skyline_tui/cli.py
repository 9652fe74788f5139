"""Command line: ``skyline-tui ENTRY`` opens the app; ``--json PATH|-`` writes the report headlessly.

Exit status of a ``--json`` run: 0 ok, 1 the profile failed, 2 bad usage (found before profiling), 3 a
``--fail-if`` budget or the ``--baseline`` comparison failed (the report is written all the same).

The ``--json`` path never imports textual (nor torch: profiling happens in the worker process).  With
``--json -`` nothing but the JSON goes to stdout; the user's output and our progress go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, TextIO

from skyline_tui.version import __version__
from skyline_tui.checks import CheckError, RunChecks, prepare_checks
from skyline_tui.argtypes import positive_float, positive_int
from skyline_tui.project import project_root
from skyline_tui.config import INTERACTIVE_THROUGHPUT_BUDGET_S, ProfileConfig
from skyline_tui.export.report_json import write_report
from skyline_tui.report import STEADY_MALLOC_TOP_PAD, ErrorInfo, Report, contended, faulting, faulting_samples

EXIT_OK, EXIT_PROFILE_ERROR, EXIT_USAGE, EXIT_CHECK_FAILED = 0, 1, 2, 3

# Verbs beside the default ``skyline-tui ENTRY``: name -> (module, function(argv) -> exit status, summary).
# Each module is imported only when its verb is used, so no verb slows the others' start.
VERBS: dict[str, tuple[str, str, str]] = {
    "history": ("skyline_tui.history.commands", "history_main", "list recorded profile runs, newest first"),
    "diff": ("skyline_tui.history.commands", "diff_main", "what changed between two runs, line by line"),
    "sweep": ("skyline_tui.sweep.commands", "main", "profile a grid of configurations"),
    "run": ("skyline_tui.cli", "run_main", "run a training script unchanged and watch it step by step"),
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
                                                      "code (default: the nearest folder up from the entry "
                                                      "point holding .git, pyproject.toml, setup.py or "
                                                      "setup.cfg, not above your home; else the entry's folder)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N",
                        help="profile at this batch size instead of the input provider's default")
    parser.add_argument("--timeout", type=positive_float, default=ProfileConfig.timeout_s, metavar="S",
                        help="stop a run that takes longer than S seconds (default: %(default)g)")
    parser.add_argument("--throughput-budget", type=positive_float, metavar="S",
                        help="time spent measuring throughput at most (default: "
                             f"{ProfileConfig.throughput_budget_s:g} with --json, "
                             f"{INTERACTIVE_THROUGHPUT_BUDGET_S:g} in the app, where a save re-profiles)")
    parser.add_argument("--predictions-budget", type=positive_float,
                        default=ProfileConfig.predictions_budget_s, metavar="S",
                        help="time spent measuring other batch sizes at most (default: %(default)g)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the run-time breakdown")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory breakdown")
    parser.add_argument("--no-health", action="store_true",
                        help="skip the training-health phase (per-layer gradients, updates, activations)")
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


def config_from_args(args: argparse.Namespace, interactive: bool = False) -> ProfileConfig:
    """The run's config; ``interactive`` (the app) starts from budgets that give the first number sooner."""
    base = ProfileConfig.interactive() if interactive else ProfileConfig()
    changes = dict(
        batch_size=args.batch_size, timeout_s=args.timeout, predictions_budget_s=args.predictions_budget,
        breakdown=not args.no_breakdown, memory=not args.no_memory, health=not args.no_health,
        predictions=not args.no_predictions,
    )
    if args.throughput_budget is not None:
        changes["throughput_budget_s"] = args.throughput_budget
    if getattr(args, "trace", None):
        changes["trace_path"] = os.path.abspath(args.trace)  # the run child works in the project's folder
    return base.replace(**changes)


def run_main(argv: Sequence[str]) -> int:
    """``skyline-tui run``: the live view with a terminal (Textual imported only then), else headless."""
    from skyline_tui.run import command

    parser = command.build_parser()
    args = command.parse(parser, list(argv))
    if not command.wants_live_view(args):
        return command.run(args, parser)
    from skyline_tui.tui.run_launch import run_live

    return run_live(args, parser)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in VERBS:
        module, function, _summary = VERBS[argv[0]]
        return int(getattr(importlib.import_module(module), function)(argv[1:]))
    args = build_parser().parse_args(argv)
    if args.write_batch_size is not None:
        return write_batch_size_command(args.entry, args.write_batch_size)
    ci_flags = [flag for flag, value in (("--fail-if", args.fail_if), ("--baseline", args.baseline),
                                         ("--max-regression", args.max_regression), ("--trace", args.trace))
                if value not in (None, [])]
    if args.json is None and ci_flags:
        print(f"skyline-tui: {ci_flags[0]} needs --json (a headless run)", file=sys.stderr)
        return EXIT_USAGE
    if args.json is not None:
        config = config_from_args(args)
        try:  # before profiling: a typo in a budget or a missing baseline costs no run
            checks = prepare_checks(config, args.fail_if, args.baseline, args.max_regression,
                                    history_path=_history_to_read(args))
        except CheckError as exc:
            print(f"skyline-tui: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return json_command(args.entry, args.root, config, args.json, quiet=args.quiet, checks=checks,
                            history=args.history, no_history=args.no_history)
    problem = _check_entry(args.entry, args.root)
    if problem is not None:
        print(f"skyline-tui: {problem.message}", file=sys.stderr)
        return EXIT_USAGE
    if not sys.stdout.isatty():  # piped, a script, a CI job: the app would draw escape codes and wait forever
        print("skyline-tui: stdout is not a terminal; use --json PATH (or --json -) to profile headless",
              file=sys.stderr)
        return EXIT_USAGE
    from skyline_tui.tui.launch import run_app  # textual is imported only here

    from skyline_tui.history import resolve_history_path

    root = project_root(args.entry, args.root)  # the store the --json runs of this entry record into too
    return run_app(args.entry, args.root, config_from_args(args, interactive=True), watch=not args.no_watch,
                   history_path=resolve_history_path(args.history, args.no_history, root))


def _check_entry(entry: str, root: Optional[str]) -> Optional[ErrorInfo]:
    from skyline_tui.profiler.entry import resolve_paths  # torch-free
    from skyline_tui.profiler.errors import ProfileError

    try:
        resolve_paths(entry, root)
    except ProfileError as exc:
        return exc.info
    return None


def json_command(entry: str, root: Optional[str], config: ProfileConfig, destination: str,
                 quiet: bool = False, checks: Optional[RunChecks] = None, history: Optional[str] = None,
                 no_history: bool = False) -> int:
    from skyline_tui.worker import protocol as p
    from skyline_tui.worker.client import profile_once

    began = time.monotonic()
    checks = checks or RunChecks()
    err = sys.stderr
    write_errors: list[OSError] = []

    def write(report: Report) -> None:
        try:
            write_report(report, destination, sys.stdout)
        except OSError as exc:
            write_errors.append(exc)

    problem = _check_entry(entry, root)
    if problem is not None:
        report = Report(entry_point=entry, project_root=root or "", error=problem)
        write(report)
    else:
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

        profile_once(entry, root, config, on_event=on_event, on_final=on_final)
        report = checked[0]  # profile_once calls on_final exactly once, whatever happens
    if write_errors:
        exc = write_errors[0]
        print(f"skyline-tui: cannot write {destination}: {exc.strerror or exc}", file=err)
        return EXIT_PROFILE_ERROR
    _record_in_history(report, config, history, no_history, err)
    if report.throughput is not None and contended(report.throughput):
        print(f"skyline-tui: warning: other tasks waited for a CPU during {report.throughput.cpu_contention:.0%} "
              "of the throughput measurement: the machine was busy and the times are inflated; profile on a "
              "quiet machine",
              file=err)
    for line in fault_warnings(report):
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


STEADY_ALLOCATOR = f"MALLOC_TOP_PAD_={STEADY_MALLOC_TOP_PAD} in the environment (glibc), or jemalloc or tcmalloc"


def fault_warnings(report: Report) -> list[str]:
    """A warning where the profiled batch's iterations spent a tenth of their time on page faults, and one where
    other batch sizes' did (``faulting``): the predictions then carry the allocator's cost."""
    lines, throughput = [], report.throughput
    if throughput is not None and faulting(throughput):
        lines.append(
            f"skyline-tui: warning: each measured iteration took {throughput.page_faults_per_iteration or 0.0:,.0f} "
            f"page faults, about {throughput.page_fault_ms or 0.0:.1f} ms of its {throughput.iteration_ms:.1f} ms: "
            "the allocator gives freed memory back to the system and faults it in again, and whether it does "
            "depends on what ran before (CPU times and the batch-size predictions then vary from run to run); "
            f"{STEADY_ALLOCATOR}, keeps it")
    points = faulting_samples(report.predictions, besides=report.batch_size)
    if points:
        each = ", ".join(f"{s.batch_size} ({s.page_fault_ms or 0.0:.1f} of {s.iteration_ms:.1f} ms)" for s in points)
        lines.append(f"skyline-tui: warning: page faults took a tenth or more of each iteration at batch size {each}: "
                     f"the batch-size predictions include that time; {STEADY_ALLOCATOR}, keeps it out")
    return lines


def _record_in_history(report: Report, config: ProfileConfig, history: Optional[str], no_history: bool,
                       err: TextIO) -> None:
    """After the report is out: a store that cannot be written costs one warning line, never the report."""
    from skyline_tui.history import record_safely, resolve_history_path

    path = resolve_history_path(history, no_history, report.project_root)
    record_safely(report, path, config=config.to_dict(), stream=err)


def _history_to_read(args: argparse.Namespace) -> Optional[Path]:
    """Where ``--baseline RUN_ID`` looks: the store this run would record into (``--no-history`` only
    stops the recording)."""
    from skyline_tui.history import resolve_history_path

    return resolve_history_path(args.history, False, project_root(args.entry, args.root))


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
