"""The CLI end to end, as a real subprocess: --json to a file and to stdout, exit codes, the samples."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from skyline_tui.schema import SCHEMA_PATH

from ..conftest import FIXTURES, QUICK_FLAGS, SAMPLES, TINY_ENTRY, run_cli

SCHEMA = json.loads(SCHEMA_PATH.read_text())
NO_EXTRAS = ["--no-breakdown", "--no-memory", "--no-predictions", "--no-health"]


def test_json_to_stdout_is_only_json_even_when_user_code_prints(tmp_path):
    result = run_cli(str(FIXTURES / "faults" / "flood.py"), "--json", "-", *QUICK_FLAGS, *NO_EXTRAS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)  # the whole of stdout parses
    jsonschema.validate(report, SCHEMA)
    assert report["error"] is None
    assert "stdout line 1999" in result.stderr  # the user's output is kept, on stderr


@pytest.fixture(scope="module")
def healthy_to_a_file(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One run of the healthy fixture, --json to a file at batch size 6, without -q: read by the test of --json
    PATH and --batch-size, and as the loud half of the test of -q."""
    folder = tmp_path_factory.mktemp("healthy")
    out = folder / "out.json"
    result = run_cli(str(FIXTURES / "faults" / "healthy.py"), "--json", str(out), "--batch-size", "6",
                     *QUICK_FLAGS, *NO_EXTRAS, cwd=folder)
    return result, out


def test_json_to_a_file_and_batch_size_override(healthy_to_a_file):
    result, out = healthy_to_a_file
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == ""
    report = json.loads(out.read_text())
    assert report["batch_size"] == 6
    for section in ("breakdown", "memory", "predictions"):  # --no-breakdown/--no-memory/--no-predictions
        assert report[section] is None, section
    assert report["throughput"]["iterations_measured"] >= 2


def test_errors_still_write_a_report_and_exit_non_zero(tmp_path):
    out = tmp_path / "out.json"
    result = run_cli(str(tmp_path / "nope.py"), "--json", str(out), cwd=tmp_path)
    assert result.returncode == 1
    report = json.loads(out.read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["error"]["kind"] == "file"
    assert "entry point not found" in result.stderr


def test_bad_arguments_exit_with_usage_error(tmp_path):
    result = run_cli(str(FIXTURES / "faults" / "healthy.py"), "--batch-size", "0", "--json", "-")
    assert result.returncode == 2
    assert "must be at least 1" in result.stderr


def default_batch_size(entry: Path) -> int:
    """The input provider's default batch size, read from the source (nothing imported)."""
    (provider,) = [node for node in ast.parse(entry.read_text()).body
                   if isinstance(node, ast.FunctionDef) and node.name == "skyline_input_provider"]
    default = provider.args.defaults[-1]
    assert isinstance(default, ast.Constant) and isinstance(default.value, int)
    return default.value


def weight_bytes_by_hand(entry: Path) -> int:
    """The sample's model built in this process, its parameters' and buffers' bytes summed in a plain loop, each
    storage once."""
    sys.path.insert(0, str(entry.parent))  # its sibling modules (model.py); conftest forgets them afterwards
    spec = importlib.util.spec_from_file_location(f"sample_{entry.parent.name}", entry)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.skyline_model_provider()
    storages = {t.untyped_storage().data_ptr(): t.numel() * t.element_size()
                for t in [*model.parameters(), *model.buffers()]}
    return sum(storages.values())


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["mlp", "convnet", "transformer", "lstm"])
def test_every_sample_profiles_end_to_end(sample, tmp_path):
    entry = SAMPLES / sample / "entry.py"
    result = run_cli(str(entry), "--json", "-", *QUICK_FLAGS, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    # The samples choose their device ("cuda" if torch.cuda.is_available() else "cpu"): expect that.
    import torch

    assert report["device"]["type"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert report["throughput"]["iterations_measured"] >= 2
    assert report["throughput"]["iteration_ms"] > 0
    # Against the sample itself: its default batch, its model's weights counted here, and every breakdown row
    # quoting the line of the file it names.
    assert report["batch_size"] == default_batch_size(entry)
    assert report["memory"]["weights_bytes"] == weight_bytes_by_hand(entry)
    rows = report["breakdown"]["lines"]
    assert rows
    for row in rows:
        source = (Path(report["project_root"]) / row["file"]).read_text().splitlines()
        assert source[row["line"] - 1].strip() == row["code"], row


def test_json_to_a_device_or_fifo_writes_through_and_keeps_it_special(tmp_path):
    import os
    import stat
    import threading

    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    result = run_cli(str(tmp_path / "missing.py"), "--json", str(fifo), cwd=tmp_path)
    reader.join(timeout=60)
    assert result.returncode == 1
    assert json.loads(received[0])["error"]["kind"] == "file"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced by a regular file


def test_write_batch_size_changes_only_the_default_literal(tmp_path):
    entry = tmp_path / "entry.py"
    original = (FIXTURES / "faults" / "healthy.py").read_text().replace(
        "def skyline_input_provider(batch_size=4):", "def skyline_input_provider(batch_size: int = 4):  # keep me")
    entry.write_text(original)
    result = run_cli(str(entry), "--write-batch-size", "48", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert entry.read_text() == original.replace("batch_size: int = 4)", "batch_size: int = 48)")


def test_write_batch_size_refuses_a_default_that_is_not_a_literal(tmp_path):
    entry = tmp_path / "entry.py"
    original = (FIXTURES / "faults" / "healthy.py").read_text().replace(
        "def skyline_input_provider(batch_size=4):", "BATCH = 4\n\n\ndef skyline_input_provider(batch_size=BATCH):")
    entry.write_text(original)
    result = run_cli(str(entry), "--write-batch-size", "48", cwd=tmp_path)
    assert result.returncode == 1
    assert "skyline-tui:" in result.stderr and "literal" in result.stderr
    assert entry.read_text() == original


def test_the_app_gets_shorter_throughput_budgets_than_json_unless_asked():
    from skyline_tui.cli import build_parser
    from skyline_tui.commands.profile import config_from_args
    from skyline_tui.config import ProfileConfig

    defaults = build_parser().parse_args(["entry.py"])
    assert config_from_args(defaults) == ProfileConfig()
    app = config_from_args(defaults, interactive=True)
    assert app.throughput_budget_s < ProfileConfig().throughput_budget_s
    assert app.warmup_s <= ProfileConfig().warmup_s  # both 0.1 s since issue 16 (see config.py)
    assert app == ProfileConfig.interactive()
    asked = build_parser().parse_args(["entry.py", "--throughput-budget", "5", "--no-memory"])
    assert config_from_args(asked, interactive=True).throughput_budget_s == 5.0
    assert config_from_args(asked, interactive=True).memory is False


SLEEP_MS = 40
SLEEPY = TINY_ENTRY.replace("import torch\n", "import time\n\nimport torch\n").replace(
    "        optimizer.step()\n", f"        optimizer.step()\n        time.sleep({SLEEP_MS / 1000})\n")


def test_a_known_sleep_bounds_the_reported_time_and_throughput(write_entry, tmp_path):
    """Each iteration sleeps 40 ms, so it takes at least that: at batch 4, at most 4 * 1000 / 40 = 100
    samples/s.  (A sleep can overrun on a busy machine, never underrun: only these bounds are asserted.)"""
    result = run_cli(str(write_entry(SLEEPY)), "--json", "-", *QUICK_FLAGS, *NO_EXTRAS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    throughput = json.loads(result.stdout)["throughput"]
    assert throughput["iteration_ms"] >= SLEEP_MS
    assert 0 < throughput["samples_per_second"] <= 100.0


def test_without_a_terminal_the_app_says_to_use_json_and_exits_2(tmp_path):
    result = run_cli(str(FIXTURES / "faults" / "healthy.py"), cwd=tmp_path, timeout=60)  # stdout is a pipe
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--json PATH" in lines[0] and "not a terminal" in lines[0], result.stderr


def test_quiet_writes_no_progress_lines(healthy_to_a_file, tmp_path):
    loud, _out = healthy_to_a_file
    quiet = run_cli(str(FIXTURES / "faults" / "healthy.py"), "--json", str(tmp_path / "b.json"), "--batch-size", "6",
                    "-q", *QUICK_FLAGS, *NO_EXTRAS, cwd=tmp_path)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "skyline-tui: throughput done" in loud.stderr and "report written to" in loud.stderr
    # Warnings stay (a busy CI machine gets "warning: other tasks waited for a CPU ..."); progress lines go.
    assert all("warning:" in line for line in quiet.stderr.splitlines() if line.startswith("skyline-tui:")), \
        quiet.stderr
    assert " done at " not in quiet.stderr and "report written to" not in quiet.stderr, quiet.stderr
    assert json.loads((tmp_path / "b.json").read_text())["error"] is None


def test_version_prints_the_package_version():
    import re

    from ..conftest import REPO

    version = re.search(r'^version = "([^"]+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    result = run_cli("--version", timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"skyline-tui {version}"


def test_a_report_that_cannot_be_written_is_a_one_line_error_and_exit_1(tmp_path):
    missing_folder = tmp_path / "no" / "such" / "folder" / "out.json"
    result = run_cli(str(tmp_path / "nope.py"), "--json", str(missing_folder), cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert f"skyline-tui: cannot write {missing_folder}: No such file or directory" in result.stderr.splitlines()
    assert not missing_folder.parent.exists()


def test_the_help_lists_every_other_verb_and_each_verb_answers_its_own_help():
    """`skyline-tui --help` names the verbs beside the default; each has its own --help (exit 0)."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    listed = result.stdout[result.stdout.index("other commands"):]
    for verb, words in (("history", "list recorded profile runs"), ("diff", "what changed between two runs"),
                        ("sweep", "profile a grid of configurations")):
        assert f"skyline-tui {verb}" in listed and words in listed, listed
        own = run_cli(verb, "--help")
        assert own.returncode == 0 and own.stdout.startswith(f"usage: skyline-tui {verb} "), own.stdout[:200]


def test_the_profile_and_the_sweep_take_the_same_breakdown_flags_with_their_own_defaults():
    from skyline_tui.cli import build_parser
    from skyline_tui.commands.profile import config_from_args
    from skyline_tui.commands.sweep import trial_config

    def profile(*flags: str) -> bool:
        return config_from_args(build_parser().parse_args(["e.py", *flags])).breakdown

    def sweep(*flags: str) -> bool:
        return trial_config(build_parser("sweep").parse_args(["e.py", "s.yaml", *flags])).breakdown

    assert (profile(), profile("--no-breakdown"), profile("--no-breakdown", "--breakdown")) == (True, False, True)
    assert (sweep(), sweep("--breakdown"), sweep("--breakdown", "--no-breakdown")) == (False, True, False)
