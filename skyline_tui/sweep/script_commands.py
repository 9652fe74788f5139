"""``skyline-tui sweep SCRIPT SPEC.yaml``: a grid of real training runs of a plain script (no providers).

Each knob becomes the script's own command-line option; each trial is a ``skyline-tui run`` of the script
(supervised, tracked, recorded with the sweep id and its knobs).  Never imports textual, nor torch in this
process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional

from skyline_tui.argtypes import positive_int
from skyline_tui.export.report_json import write_text
from skyline_tui.sweep.backend import BackendError
from skyline_tui.sweep.script_spec import load_script_spec
from skyline_tui.sweep.script_state import read_state, restore, sweeps_folder, write_state
from skyline_tui.sweep.script_trials import ScriptTrialResult, TrialProcess, TrialState
from skyline_tui.sweep.spec import SpecError

EXIT_OK, EXIT_NO_TRIAL_SUCCEEDED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Run SCRIPT, a training script, at every configuration of the grid in SPEC (YAML): each key is one of the
script's own options (lr: {grid_search: [0.01, 0.1]} gives --lr 0.01, then --lr 0.1; true/false give a
flag), its value a constant or {grid_search: [...]}; the trials are the cross product.  Before any trial
the script is run up to its parse_args (nothing trained) and each trial's arguments are put to its parser:
a key it does not take, or a value it refuses, is exit status 2.  Arguments after `--` go to every trial.

Each trial is a `skyline-tui run` of the script: supervised (steps, samples/s, memory), with what it logs
through skyline_tui.track, recorded in the history store with the sweep id and its knobs.  One trial per
GPU, or --parallel N at once on the CPU (default 1: trials sharing cores corrupt each other's timings).
A failed trial is a result.  Ctrl-C stops every trial (each script gets its KeyboardInterrupt) and leaves
no process; --resume SWEEP_ID then runs only the trials that did not finish.

Exit status: 0 when the sweep ran, 1 when no trial succeeded, 2 for a bad spec or usage, 130 on Ctrl-C.
(`skyline-tui sweep` shows this after its own description: commands/sweep.py.)"""


def add_script_flags(parser: argparse.ArgumentParser) -> None:
    """The flags only a training-script sweep has (the rest it shares with the profile sweep)."""
    parser.add_argument("--parallel", type=positive_int, default=1, metavar="N",
                        help="script sweeps, CPU: run N trials at once (default: 1; they share the cores and slow "
                             "each other)")
    parser.add_argument("--metric", metavar="NAME", help="script sweeps: the tracked metric the table shows and "
                                                         "ranks by")
    parser.add_argument("--mode", choices=("min", "max"), default="min",
                        help="script sweeps: whether a lower or a higher --metric is better (default: min)")
    parser.add_argument("--resume", metavar="SWEEP_ID", help="script sweeps: run only the trials of this sweep that "
                                                             "did not finish")


def run(args: argparse.Namespace, script_args: list[str]) -> int:
    """A parsed script sweep (``args.entry`` the script; ``script_args``: what came after ``--``)."""
    err = sys.stderr
    if not os.path.isfile(args.entry):
        print(f"skyline-tui sweep: script not found (or not a file): {args.entry}", file=err)
        return EXIT_USAGE
    script = os.path.abspath(args.entry)
    try:
        sweep = load_script_spec(args.spec, script, script_args, cwd=os.getcwd())
    except SpecError as exc:
        print(f"skyline-tui sweep: {exc}", file=err)
        return EXIT_USAGE
    from skyline_tui.history import resolve_history_path
    from skyline_tui.project import find_project_root

    history = resolve_history_path(args.history, args.no_history, find_project_root(script))
    states = [TrialState(trial) for trial in sweep.trials]
    if args.resume:
        sweep_id = args.resume
        folder = sweeps_folder(history) / sweep_id
        try:
            saved = read_state(folder)
        except (OSError, ValueError) as exc:
            print(f"skyline-tui sweep: cannot resume {sweep_id}: no readable state in {folder} ({exc})", file=err)
            return EXIT_USAGE
        if saved.get("script") != script:
            print(f"skyline-tui sweep: sweep {sweep_id} ran {saved.get('script')}, not {script}", file=err)
            return EXIT_USAGE
        done = restore(states, saved)
        print(f"skyline-tui sweep: resuming {sweep_id}: {done} of {len(states)} trials finished before", file=err)
    else:
        from skyline_tui.sweep.runner import new_sweep_id

        sweep_id = new_sweep_id()
        folder = sweeps_folder(history) / sweep_id
    try:
        runner = _runner(args)
    except BackendError as exc:
        print(f"skyline-tui sweep: {exc}", file=err)
        return EXIT_USAGE
    return run_script_sweep(args, script, script_args, sweep_id, folder, history, states, runner)


def _runner(args: argparse.Namespace) -> Any:
    if args.ray is None:
        return None
    from skyline_tui.sweep.script_ray import ScriptRayRunner

    runner = ScriptRayRunner(address=args.ray or None, num_cpus=args.ray_cpus)
    runner.check()
    return runner


def run_script_sweep(args: argparse.Namespace, script: str, script_args: list[str], sweep_id: str, folder: Path,
                     history: Optional[Path], states: list[TrialState], ray_runner: Any) -> int:
    from rich.console import Console
    from rich.live import Live

    from skyline_tui.sweep.script_local import run_local, trial_slots
    from skyline_tui.sweep.script_table import ScriptSweepProgress, ranked, trial_table

    err = sys.stderr
    todo = [s for s in states if s.result is None]
    history_text = str(history) if history is not None else None
    slots, where = trial_slots(args.parallel)
    if ray_runner is not None:
        where = ray_runner.describe()
    progress = ScriptSweepProgress(states, where, args.metric, args.mode)
    def save() -> None:
        write_state(folder, sweep_id, script, args.spec, script_args, states)

    save()
    print(f"skyline-tui sweep: {sweep_id}: {len(todo)} trial(s) of {script} on {where}", file=err)

    def finished_result(state: TrialState, result: ScriptTrialResult) -> None:
        state.result = result
        state.status = "ok" if result.ok else "failed"
        save()

    def finished_process(process: TrialProcess, code: int) -> None:
        finished_result(process.state, process.result(code, args.mode))

    def launch(state: TrialState, env: dict[str, str]) -> TrialProcess:
        return TrialProcess(state, script, folder, history_text, sweep_id, env, cwd=os.getcwd())

    def by_state(result: ScriptTrialResult) -> None:
        state = next(s for s in states if s.trial.index == result.trial.index)
        finished_result(state, result)

    def go(tick: Any) -> None:
        if ray_runner is not None:
            ray_runner.run(todo, script, history_text, sweep_id, os.getcwd(), args.mode, str(folder), by_state, tick)
        else:
            run_local(todo, slots, launch, finished_process, tick)

    interrupted = False
    try:
        if args.quiet:
            go(None)
        else:
            with Live(progress, console=Console(stderr=True), refresh_per_second=4, transient=True) as live:
                go(live.refresh)
    except KeyboardInterrupt:
        interrupted = True
        save()
        print(f"skyline-tui sweep: interrupted; resume with: skyline-tui sweep {args.entry} {args.spec} "
              f"--resume {sweep_id}", file=err)
    except BackendError as exc:
        print(f"skyline-tui sweep: {exc}", file=err)
        return EXIT_USAGE
    out = err if args.json == "-" else sys.stdout
    Console(file=out, width=max(Console(file=out).width, 140)).print(
        trial_table(ranked(states, args.metric, args.mode), args.metric, args.mode,
                    title=f"sweep {sweep_id} of {os.path.basename(script)} on {where}"))
    if args.json is not None:
        text = json.dumps(sweep_json(sweep_id, script, states), indent=2) + "\n"
        try:
            write_text(text, args.json, sys.stdout)
        except OSError as exc:
            print(f"skyline-tui sweep: cannot write {args.json}: {exc.strerror or exc}", file=err)
            return EXIT_NO_TRIAL_SUCCEEDED
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if any(s.result is not None and s.result.ok for s in states) else EXIT_NO_TRIAL_SUCCEEDED


def sweep_json(sweep_id: str, script: str, states: list[TrialState]) -> dict[str, Any]:
    """``{sweep_id, script, trials[...]}`` in the spec's order; a trial that did not finish has
    ``exit_code`` null and says so in ``error``.  A NaN metric is null (JSON has none)."""
    trials = []
    for state in sorted(states, key=lambda s: s.trial.index):
        if state.result is not None and not state.result.interrupted:
            entry = state.result.to_dict()
        else:
            entry = {"config": dict(state.trial.knobs), "exit_code": None, "steps": None,
                     "samples_per_second": None, "peak_bytes": None, "metrics": {}, "run_id": None,
                     "error": "interrupted" if state.status == "interrupted" else "not run"}
        entry["metrics"] = {name: {k: None if isinstance(v, float) and math.isnan(v) else v
                                   for k, v in values.items()} for name, values in entry["metrics"].items()}
        trials.append(entry)
    return {"sweep_id": sweep_id, "script": script, "trials": trials}
