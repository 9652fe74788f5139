"""A training script's sweep file, checked against the script's own parser before any trial: the script is
run up to its parse_args (nothing trained), each knob becomes its option, and what it refuses is exit 2."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from skyline_tui.sweep.script_spec import load_script_spec
from skyline_tui.sweep.spec import SpecError

from ..conftest import REPO, cli_env
from ..track_support import EXPERIMENTS, TRAIN

REQUIRED = EXPERIMENTS / "required_data.py"


def sweep_cli(script, spec, *args, env, cwd):
    return subprocess.run([sys.executable, "-m", "skyline_tui", "sweep", str(script), str(spec), "-q", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def test_each_knob_becomes_the_option_the_script_itself_parses(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("lr: {grid_search: [0.01, 0.5]}\nshuffle: false\namp: {grid_search: [true, false]}\n"
                    "layers: [8, 16]\n")
    sweep = load_script_spec(str(spec), str(REQUIRED), ["--data", "d.csv"], cwd=str(tmp_path))
    assert [t.knobs for t in sweep.trials] == [
        {"lr": lr, "shuffle": False, "amp": amp, "layers": [8, 16]} for lr in (0.01, 0.5) for amp in (True, False)]
    # The oracle: what the script's own parser makes of each trial's arguments, printed by the script.
    for trial in sweep.trials:
        result = subprocess.run([sys.executable, str(REQUIRED), *trial.argv], capture_output=True, text=True,
                                timeout=60, check=True)
        parsed = dict(ast.literal_eval(result.stdout.split("ARGS ", 1)[1]))
        assert parsed == {"data": "d.csv", "lr": trial.knobs["lr"], "shuffle": False, "amp": trial.knobs["amp"],
                          "layers": [8, 16]}


@pytest.mark.parametrize(("grid", "expected"), [
    ("lr: {grid_search: [0.01, 0.1]}\nlearning_rat: 0.3\n",
     ["grid.yaml, line 2", "unknown knob 'learning_rat'", "train.py has no option --learning-rat", "--lr"]),
    ("lr: 0.1\noptimizer: {grid_search: [sgd, rmsprop]}\n",
     ["grid.yaml, line 2", "optimizer='rmsprop'", "invalid choice: 'rmsprop'"]),
    ("nesterov: 3\n", ["grid.yaml, line 1", "'nesterov' is 3", "--nesterov is a flag"]),
    ("steps: {grid_search: [4, many]}\n", ["grid.yaml, line 1", "steps='many'", "invalid int value"]),
])
def test_a_key_or_value_the_script_refuses_is_exit_2_before_any_trial(tmp_path, grid, expected):
    spec = tmp_path / "grid.yaml"
    spec.write_text(grid)
    log = tmp_path / "trained.log"
    env = cli_env()
    env["TRAIN_LOG"] = str(log)
    result = sweep_cli(TRAIN, spec, "--history", str(tmp_path / "h.db"), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    assert not log.exists()  # the probe stopped at parse_args, and no trial started
    assert not (tmp_path / "h.db").exists() and not (tmp_path / "sweeps").exists()


def test_an_argument_the_script_requires_and_the_grid_lacks_is_refused(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("lr: 0.1\n")
    with pytest.raises(SpecError, match="required: --data"):
        load_script_spec(str(spec), str(REQUIRED), [], cwd=str(tmp_path))
    # Given after `--`, it goes to every trial, before the knobs.
    sweep = load_script_spec(str(spec), str(REQUIRED), ["--data", "x"], cwd=str(tmp_path))
    assert [t.argv for t in sweep.trials] == [("--data", "x", "--lr", "0.1")]


def test_a_script_without_argparse_is_refused_without_being_run(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("lr: 0.1\n")
    log = tmp_path / "ran.log"
    env = cli_env()
    env["TRAIN_LOG"] = str(log)
    result = sweep_cli(EXPERIMENTS / "no_argparse.py", spec, "--no-history", env=env, cwd=REPO)
    assert result.returncode == 2
    assert "no_argparse.py reads no command-line options with argparse" in result.stderr
    assert not log.exists()
