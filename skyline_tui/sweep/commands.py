"""``skyline-tui sweep ENTRY SPEC.yaml``: profile every configuration of a grid, rank them, record them.

Never imports textual, nor torch in this process: the trials run in the profiling worker (or on Ray).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import sys
import uuid
from typing import Any, Optional, Sequence, TextIO

from skyline_tui.argtypes import non_negative_float, positive_float, positive_int
from skyline_tui.config import ProfileConfig
from skyline_tui.report import Report
from skyline_tui.export.report_json import write_text
from skyline_tui.sweep.backend import BackendError, SweepBackend, backend_named
from skyline_tui.sweep.results import (
    TrialResult,
    TrialSink,
    make_trials,
    sweep_document,
)
from skyline_tui.sweep.script_spec import defines_providers
from skyline_tui.sweep.spec import SpecError, SweepSpec, load_spec

EXIT_OK, EXIT_NO_TRIAL_SUCCEEDED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Profile ENTRY at every configuration of the grid in SPEC (YAML): each key is a knob, its value a constant
or {grid_search: [v1, v2, ...]}; the trials are the cross product.  Built-in knobs: batch_size,
precision (fp32|bf16|fp16, under torch.autocast), channels_last (true|false), compile (true|false;
torch.compile time is reported apart, never inside samples/s).  Any other key must be a keyword parameter
of one of the entry point's providers, e.g. skyline_model_provider(hidden=256).

Trials that share a device run one after another: two timing runs on one GPU (or on the CPU) slow each
other down and corrupt both numbers.  Locally, one warm worker serves every trial (torch is imported once
per sweep), each trial in its own forked process; with several GPUs, one trial per GPU at a time.  A
failing trial (an exception, out of memory, a timeout) is a result with its error; the sweep goes on.

Exit status: 0 when the sweep ran, 1 when no trial succeeded, 2 for a bad spec or usage, 130 on Ctrl-C
(finished trials are still printed and written).

A plain training script (a file with no providers) is swept as real training runs instead, each knob one
of its own options: skyline-tui sweep SCRIPT SPEC [--parallel N] [--metric NAME] [--mode min|max]
[--resume SWEEP_ID] [-- ARGS]; `skyline-tui sweep SCRIPT SPEC --help` lists its flags."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyline-tui sweep", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry", help="the entry point (a Skyline entry point; providers may take knobs)")
    parser.add_argument("spec", help="the sweep file (YAML)")
    parser.add_argument("--root", metavar="DIR", help="project root (default: as for a profile, the nearest folder "
                        "up from the entry point holding .git, pyproject.toml, setup.py or setup.cfg; else the "
                        "entry's folder)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH ('-' for stdout)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also measure each trial's run-time breakdown (throughput and memory always)")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run each trial as a Ray task: join the cluster at ADDRESS (or $RAY_ADDRESS), "
                             "else start a local one and shut it down at the end.  Ray opens network ports; "
                             "needs pip install 'skyline-tui[ray]'.  Put --ray after ENTRY and SPEC")
    parser.add_argument("--ray-cpus", type=positive_int, metavar="N",
                        help="CPUs of the local Ray cluster (default: all of them)")
    parser.add_argument("--timeout", type=positive_float, default=ProfileConfig.timeout_s, metavar="S",
                        help="stop a trial that takes longer than S seconds (default: %(default)g)")
    parser.add_argument("--throughput-budget", type=positive_float, default=ProfileConfig.throughput_budget_s,
                        metavar="S", help="time spent measuring each trial's throughput at most "
                                          "(default: %(default)g)")
    parser.add_argument("--warmup", type=non_negative_float, default=ProfileConfig.warmup_s, metavar="S",
                        help="warm-up time before each trial's measurement (default: %(default)g)")
    parser.add_argument("--history", metavar="PATH", help="record each trial (with the sweep id and its knobs) in "
                        "this history store (default: $SKYLINE_TUI_HISTORY, else "
                        "<project root>/.skyline-tui/history.db)")
    parser.add_argument("--no-history", action="store_true", help="record nothing in the history store")
    parser.add_argument("-q", "--quiet", action="store_true", help="no live table on stderr")
    return parser


def trial_config(args: argparse.Namespace) -> ProfileConfig:
    """Every trial's starting point; its knobs go on top.  Predictions are off (a sweep *is* the
    measurement at other configurations), and so is the health phase (a training-health question, not a
    which-configuration-is-fastest one)."""
    return ProfileConfig(timeout_s=args.timeout, throughput_budget_s=args.throughput_budget,
                         warmup_s=args.warmup, breakdown=args.breakdown, memory=True, health=False,
                         predictions=False)


def new_sweep_id() -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script = next((a for a in argv if a.endswith(".py") and os.path.isfile(a)), None)
    if script is not None and not defines_providers(script):
        # A plain training script (no providers): each trial is a real run of it (script_commands.py).
        from skyline_tui.sweep.script_commands import main as script_main

        return script_main(argv)
    args = build_parser().parse_args(argv)
    args.sweep_id = new_sweep_id()
    err = sys.stderr
    if not os.path.isfile(args.entry):
        print(f"skyline-tui sweep: entry point not found (or not a file): {args.entry}", file=err)
        return EXIT_USAGE
    try:
        spec = load_spec(args.spec, args.entry)
    except SpecError as exc:
        print(f"skyline-tui sweep: {exc}", file=err)
        return EXIT_USAGE
    try:
        backend = backend_named("ray", address=args.ray or None, num_cpus=args.ray_cpus) \
            if args.ray is not None else backend_named("local")
        backend.check()
    except BackendError as exc:
        print(f"skyline-tui sweep: {exc}", file=err)
        return EXIT_USAGE
    return run_sweep(args, spec, backend, sink=history_sink(args))


def history_sink(args: argparse.Namespace) -> Optional[TrialSink]:
    """Records each finished trial (failed ones too) in the history store; None when history is off.
    A store that cannot be written costs one warning line per trial, never the sweep."""
    from skyline_tui.history import record_safely, resolve_history_path
    from skyline_tui.project import project_root

    # The store the entry's --json runs and the app record into: `skyline-tui history` lists the trials with them.
    path = resolve_history_path(args.history, args.no_history, project_root(args.entry, args.root))
    if path is None:
        return None
    base = trial_config(args)
    sweep_id = args.sweep_id

    def record(report: Report, knobs: dict[str, Any]) -> Optional[int]:
        (trial,) = make_trials([knobs], base)
        return record_safely(report, path, config=trial.config.to_dict(), sweep_id=sweep_id, knobs=knobs,
                             stream=sys.stderr)

    return record


def run_sweep(args: argparse.Namespace, spec: SweepSpec, backend: SweepBackend,
              sink: Optional[TrialSink]) -> int:
    from rich.console import Console
    from rich.live import Live

    from skyline_tui.sweep.table import SweepProgress, final_table

    err = sys.stderr
    entry = os.path.abspath(args.entry)
    sweep_id = args.sweep_id
    trials = make_trials(spec.trials(), trial_config(args))
    progress = SweepProgress(len(trials), backend.describe())
    console = Console(stderr=True)

    def finished(result: TrialResult) -> None:
        if sink is not None:
            result = dataclasses.replace(result, run_id=sink(result.report, result.trial.knobs))
        progress.finished(result)

    interrupted = False
    try:
        if args.quiet:
            backend.run(entry, args.root, trials, finished, progress.started)
        else:
            with Live(progress, console=console, refresh_per_second=4, transient=True):
                backend.run(entry, args.root, trials, finished, progress.started)
    except KeyboardInterrupt:
        interrupted = True
        print(f"skyline-tui sweep: interrupted; {len(progress.results)} of {len(trials)} trials finished "
              "and are kept", file=err)
    except BackendError as exc:
        print(f"skyline-tui sweep: {exc}", file=err)
        return EXIT_USAGE
    results = progress.results
    out: TextIO = err if args.json == "-" else sys.stdout
    Console(file=out, width=max(Console(file=out).width, 120)).print(final_table(results))
    if args.json is not None:
        code = _write_json(sweep_document(sweep_id, entry, results), args.json, err)
        if code:
            return code
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if any(r.ok for r in results) else EXIT_NO_TRIAL_SUCCEEDED


def _write_json(document: dict[str, object], destination: str, err: TextIO) -> int:
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    try:
        write_text(text, destination, sys.stdout)  # atomic for a file; through a device (/dev/null) or FIFO
    except OSError as exc:
        print(f"skyline-tui sweep: cannot write {destination}: {exc.strerror or exc}", file=err)
        return EXIT_NO_TRIAL_SUCCEEDED
    return 0
