"""``skyline-tui run [OPTIONS] SCRIPT [ARGS...]`` and ``skyline-tui run [OPTIONS] -m MODULE [ARGS...]``.

skyline-tui's options come before the script; everything after it is the script's.  The exit status is the
script's (128 + N when signal N ended it, as a shell reports it); 2 when the run is refused before it starts
(no such script, several processes).  Torch-free and textual-free: the script runs in its own process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TextIO

from skyline_tui.argtypes import positive_int
from skyline_tui.run import events as ev
from skyline_tui.run.health_budget import HEALTH_BUDGET
from skyline_tui.run.headless import EventsFile, Progress, summary_text
from skyline_tui.run.launcher import EventSink, RunOptions, Target, distributed_launcher, launch
from skyline_tui.run.summary import RunSummary, SummaryBuilder

EXIT_USAGE = 2
# Set by `skyline-tui sweep SCRIPT` for each trial: the sweep's id and the trial's knobs (JSON), recorded with the run.
SWEEP_ID_ENV, SWEEP_KNOBS_ENV = "SKYLINE_TUI_SWEEP_ID", "SKYLINE_TUI_SWEEP_KNOBS"


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Run a training script unchanged and watch it step by step: step time and its phases, "
                          "samples/s, the loss, memory, and per-layer health on sampled steps.")
    parser.add_argument("-m", dest="module", metavar="MODULE", help="run a module, as python -m MODULE does")
    parser.add_argument("--json", metavar="PATH", help="write the summary as JSON to PATH ('-': stdout, after the "
                                                       "script's own output)")
    parser.add_argument("--events", metavar="PATH", help="write every event (one a step) as JSON lines as they come")
    parser.add_argument("--samples-per-step", type=positive_int, metavar="N",
                        help="samples in one step (default: the leading dimension of the batch the outermost "
                             "module receives)")
    health = parser.add_mutually_exclusive_group()
    health.add_argument("--health-every", type=positive_int, metavar="N",
                        help="sample per-layer health every N steps (default: as often as "
                             f"{100 * HEALTH_BUDGET:g} %% of the run's time allows)")
    health.add_argument("--no-health", action="store_true", help="no per-layer health")
    parser.add_argument("--history", metavar="PATH", help="record the run in this history store (default: "
                        "$SKYLINE_TUI_HISTORY, else <project root>/.skyline-tui/history.db)")
    parser.add_argument("--no-history", action="store_true", help="record nothing in the history store")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines nor summary on stderr")
    parser.add_argument("--headless", action="store_true",
                        help="no live view even with a terminal: the script's output passes through, with progress "
                             "lines on stderr (the default without a terminal or with --json)")
    parser.add_argument("target", nargs="*", metavar="SCRIPT [ARGS...]",
                        help="the script and its own arguments (everything after the script is the script's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyline-tui run")
    prepare_parser(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    return run(parse(parser, list(sys.argv[1:] if argv is None else argv)), parser)


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Our options up to the script (or ``-m MODULE``); every token after it is the script's, even one that
    looks like ours (``--json``).  argparse's REMAINDER alone would not stop after ``-m MODULE``."""
    ours, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            i += 1
            break
        if token == "-m" or not token.startswith("-") or token == "-":
            break
        action = parser._option_string_actions.get(token.split("=", 1)[0])
        takes_value = action is not None and action.nargs is None and action.const is None and "=" not in token
        ours += argv[i:i + (2 if takes_value else 1)]
        i += 2 if takes_value else 1
    if argv[i:i + 1] == ["-m"]:
        args = parser.parse_args([*ours, *argv[i:i + 2]])
        args.target = argv[i + 2:]
        return args
    args = parser.parse_args(ours)
    args.target = argv[i:]
    return args


def target_of(args: argparse.Namespace) -> Target:
    if args.module is not None:
        return Target(script=None, module=args.module, args=tuple(args.target))
    return Target(script=args.target[0], module=None, args=tuple(args.target[1:]))


def run(args: argparse.Namespace, parser: argparse.ArgumentParser, err: TextIO = sys.stderr) -> int:
    """The headless run: the script's output passes through, a progress line every few seconds on stderr."""
    refused = check_target(args, parser, err)
    if refused is not None:
        return refused
    target = target_of(args)
    builder = summary_builder(target)
    progress = Progress(builder, err) if not args.quiet else None
    outcome = supervise(args, builder, [], RunOptions(), err,
                        on_tick=progress.tick if progress else None)
    if outcome is None:
        return EXIT_USAGE
    status = _write_summary(outcome.summary, args.json, err)
    if not args.quiet:
        print(summary_text(outcome.summary), file=err)
    if status:
        return status
    return outcome.exit_status


def wants_live_view(args: argparse.Namespace, stdout: TextIO = sys.stdout, err: TextIO = sys.stderr) -> bool:
    """A terminal on both streams, no ``--json`` nor ``--headless``: the live view (``cli`` opens it, this module never
    imports Textual)."""
    return args.json is None and not args.headless and stdout.isatty() and err.isatty()


def check_target(args: argparse.Namespace, parser: argparse.ArgumentParser, err: TextIO) -> Optional[int]:
    """The exit status of a run refused before it starts (no script, several processes), else None."""
    if args.module is None and not args.target:
        parser.error("a script to run is needed: skyline-tui run [OPTIONS] SCRIPT [ARGS...]")
    target = target_of(args)
    refusal = distributed_launcher(target)
    if refusal is not None:
        print(f"skyline-tui: {refusal}", file=err)
        return EXIT_USAGE
    if target.script is not None and not os.path.exists(target.script):
        print(f"skyline-tui: no such script: {target.script}", file=err)
        return EXIT_USAGE
    return None


def summary_builder(target: Target) -> SummaryBuilder:
    return SummaryBuilder(target.shown, (target.script or target.module or "", *target.args))


@dataclass(frozen=True)
class Outcome:
    returncode: int  # as the launcher returns it (negative: the signal that ended the script)
    summary: RunSummary
    run_id: Optional[int]  # in the history store (None: not recorded)

    @property
    def exit_status(self) -> int:
        """The script's status as a shell reports it (128 + N when signal N ended it)."""
        return 128 - self.returncode if self.returncode < 0 else self.returncode


def supervise(args: argparse.Namespace, builder: SummaryBuilder, watchers: Sequence[EventSink],
              options: RunOptions, err: TextIO, on_tick: Optional[Callable[[], None]] = None,
              on_started: Optional[Callable[[subprocess.Popen[bytes]], None]] = None) -> Optional[Outcome]:
    """One run from start to history, for the headless path and the live view alike: ``--events``, the
    summary (``builder``), each of ``watchers`` fed every event, then the run recorded.  ``options`` adds
    what the caller needs (``capture_output``) to what ``args`` say.  None: ``--events`` cannot be written."""
    target = target_of(args)
    root = project_root_of(target)
    sinks: list[Any] = []
    events_file = None
    if args.events:
        try:
            events_file = EventsFile(args.events)
        except OSError as exc:
            print(f"skyline-tui: cannot write {args.events}: {exc.strerror or exc}", file=err)
            return None
        sinks.append(events_file)
    sinks.append(builder)
    tracked = TrackedMetrics()
    sinks.append(tracked)
    sinks.extend(watchers)

    def on_event(event: ev.Event) -> None:
        for sink in sinks:
            sink(event)

    began = time.monotonic()
    options = replace(options, samples_per_step=args.samples_per_step, health_every=args.health_every, root=root,
                      health_budget=None if args.no_health or args.health_every else HEALTH_BUDGET)
    try:
        returncode = launch(target, options, on_event, on_tick=on_tick, on_started=on_started)
    finally:
        if events_file is not None:
            events_file.close()
    summary = builder.summary(duration_s=time.monotonic() - began)
    run_id = _record(summary, builder.steps, tracked.records, root, args, err)
    return Outcome(returncode, summary, run_id)


def project_root_of(target: Target) -> str:
    from skyline_tui.project import find_project_root

    if target.script is not None:
        return str(find_project_root(target.script))
    return os.getcwd()


def _write_summary(summary: RunSummary, destination: Optional[str], err: TextIO) -> int:
    if destination is None:
        return 0
    text = summary.to_json() + "\n"
    try:
        if destination == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            Path(destination).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"skyline-tui: cannot write {destination}: {exc.strerror or exc}", file=err)
        return 1
    return 0


class TrackedMetrics:
    """What the script logged with ``skyline_tui.track``, gathered from its ``Metrics`` events."""

    def __init__(self) -> None:
        self.records: list[tuple[int, str, float]] = []

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.Metrics):
            from skyline_tui.track.run_sink import records_of

            self.records += records_of(event)


def _record(summary: RunSummary, steps: list[ev.Step], metrics: list[tuple[int, str, float]], root: str,
            args: argparse.Namespace, err: TextIO) -> Optional[int]:
    from skyline_tui.history.location import resolve_history_path
    from skyline_tui.history.record import record_run

    path = resolve_history_path(args.history, args.no_history, root)
    # A sweep's trial (skyline-tui sweep SCRIPT) says which sweep it belongs to, and its knobs.
    return record_run(summary, path, kind="train", steps=steps, project_root=root, stream=err,
                      sweep_id=os.environ.get(SWEEP_ID_ENV) or None, knobs=_knobs_from_env(), metrics=metrics)


def _knobs_from_env() -> Optional[dict[str, Any]]:
    import json

    try:
        knobs = json.loads(os.environ.get(SWEEP_KNOBS_ENV) or "null")
    except ValueError:
        return None
    return knobs if isinstance(knobs, dict) else None


if __name__ == "__main__":
    sys.exit(main())
