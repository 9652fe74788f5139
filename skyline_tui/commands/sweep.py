"""``skyline-tui sweep ENTRY SPEC.yaml``: profile every configuration of a grid, rank them, record them."""

from __future__ import annotations

import argparse

from skyline_tui.argtypes import non_negative_float, positive_float, positive_int
from skyline_tui.commands import Command
from skyline_tui.commands.flags import add_breakdown, add_quiet, add_recording, add_root, add_timeout
from skyline_tui.config import ProfileConfig

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

A plain training script (a file with no providers) is swept as real training runs instead: each knob one of
its own options, each trial a `skyline-tui run` of it (--parallel, --metric, --mode, --resume; arguments
after `--` go to every trial)."""


class SweepCommand(Command):
    name = "sweep"
    summary = "profile a grid of configurations"
    description = DESCRIPTION
    raw_description = True

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("entry", help="the entry point (a Skyline entry point; providers may take knobs)")
        parser.add_argument("spec", help="the sweep file (YAML)")
        add_root(parser)
        parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH ('-' for stdout)")
        add_breakdown(parser, default=False)  # throughput and memory always
        parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                            help="run each trial as a Ray task: join the cluster at ADDRESS (or $RAY_ADDRESS), "
                                 "else start a local one and shut it down at the end.  Ray opens network ports; "
                                 "needs pip install 'skyline-tui[ray]'.  Put --ray after ENTRY and SPEC")
        parser.add_argument("--ray-cpus", type=positive_int, metavar="N",
                            help="CPUs of the local Ray cluster (default: all of them)")
        add_timeout(parser, "trial")
        parser.add_argument("--throughput-budget", type=positive_float, default=ProfileConfig.throughput_budget_s,
                            metavar="S", help="time spent measuring each trial's throughput at most "
                                              "(default: %(default)g)")
        parser.add_argument("--warmup", type=non_negative_float, default=ProfileConfig.warmup_s, metavar="S",
                            help="warm-up time before each trial's measurement (default: %(default)g)")
        add_recording(parser, "trial (with the sweep id and its knobs)")
        add_quiet(parser, "no live table on stderr")
        from skyline_tui.sweep.script_commands import add_script_flags  # the training-script sweep's own flags

        add_script_flags(parser)

    def parse(self, parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
        """Everything after ``--`` goes to every trial of a training-script sweep."""
        cut = argv.index("--") if "--" in argv else len(argv)
        args = parser.parse_args(argv[:cut])
        args.script_args = argv[cut + 1:]
        return args

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        import os
        import sys

        from skyline_tui.history import resolve_history_path
        from skyline_tui.project import entry_problem, project_root
        from skyline_tui.sweep.backend import BackendError, backend_named
        from skyline_tui.sweep.results import make_trials
        from skyline_tui.sweep.runner import EXIT_USAGE, new_sweep_id, run_sweep, trial_recorder
        from skyline_tui.sweep.spec import SpecError, load_spec

        from skyline_tui.sweep.script_spec import defines_providers

        err = sys.stderr
        if os.path.isfile(args.entry) and not defines_providers(args.entry):
            # A plain training script (no providers): each trial is a real run of it.
            from skyline_tui.sweep import script_commands

            return script_commands.run(args, args.script_args)
        problem = entry_problem(args.entry, args.root)
        if problem is not None:
            print(f"skyline-tui sweep: {problem.message}", file=err)
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
        base, sweep_id = trial_config(args), new_sweep_id()
        # The store the entry's --json runs and the app record into: `skyline-tui history` lists the trials
        # with them.
        store = resolve_history_path(args.history, args.no_history, project_root(args.entry, args.root))
        return run_sweep(args.entry, args.root, make_trials(spec.trials(), base), backend, sweep_id=sweep_id,
                         sink=trial_recorder(store, base, sweep_id), quiet=args.quiet, json_destination=args.json)


def trial_config(args: argparse.Namespace) -> ProfileConfig:
    """Every trial's starting point; its knobs go on top.  Predictions are off (a sweep *is* the
    measurement at other configurations), and so is the health phase (a training-health question, not a
    which-configuration-is-fastest one)."""
    return ProfileConfig(timeout_s=args.timeout, throughput_budget_s=args.throughput_budget,
                         warmup_s=args.warmup, breakdown=args.breakdown, memory=True, health=False,
                         predictions=False)
