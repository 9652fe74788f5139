"""Command line: ``skyline-tui ENTRY`` opens the app (or, with ``--json PATH|-``, writes the report
headlessly); ``skyline-tui VERB ...`` runs another verb.  Each verb is a module of ``skyline_tui.commands``,
listed once in :data:`COMMANDS`.

The ``--json`` path never imports textual (nor torch: profiling happens in the worker process).  With
``--json -`` nothing but the JSON goes to stdout; the user's output and our progress go to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Optional, Sequence

from skyline_tui.commands import Command, diff, history, profile, sweep
from skyline_tui.commands.profile import EXIT_CHECK_FAILED, EXIT_OK, EXIT_PROFILE_ERROR
from skyline_tui.config import ProfileConfig
from skyline_tui.report import STEADY_MALLOC_TOP_PAD, ErrorInfo, Report, contended, faulting, faulting_samples

if TYPE_CHECKING:
    from skyline_tui.checks import RunChecks

# Every verb, the default first (``skyline-tui ENTRY``, no word); the others by the word after ``skyline-tui``.
# A verb's module imports its heavy parts inside ``run``, so listing it here slows no other verb's start.
COMMANDS: list[Command] = [
    profile.ProfileCommand(),
    history.HistoryCommand(),
    diff.DiffCommand(),
    sweep.SweepCommand(),
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
    return int(command.run(parser.parse_args(argv), parser))


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


def json_command(entry: str, root: Optional[str], config: ProfileConfig, destination: str,
                 quiet: bool = False, checks: Optional[RunChecks] = None, history: Optional[str] = None,
                 no_history: bool = False) -> int:
    """``skyline-tui ENTRY --json DESTINATION``: one headless profile, the report written the moment it is in,
    then recorded, warned about and checked; returns the exit status."""
    from skyline_tui.checks import RunChecks
    from skyline_tui.export.report_json import write_report
    from skyline_tui.headless import profile_headless
    from skyline_tui.history import record_run, resolve_history_path
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


def format_error(error: ErrorInfo) -> str:
    where = f"{error.file}:{error.line}" if error.file and error.line else (error.file or "")
    lines = [f"skyline-tui: {error.kind} error" + (f" at {where}" if where else "") + f": {error.message}"]
    if error.traceback and error.traceback.strip() != error.message.strip():
        lines.append(error.traceback.rstrip())
    return "\n".join(lines)
