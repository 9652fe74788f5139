"""Every row of the fault table, headless: a clear error naming file/line/function, a JSON report with
``error`` set, a non-zero exit, and no process left behind.  (The app runs the same table in
test_app_reliability.py.)"""

from __future__ import annotations

import json

import jsonschema
import pytest

from skyline_tui.schema import SCHEMA_PATH

from ..conftest import QUICK_FLAGS, cli_env
from ..processes import left_behind, new_marker, processes_with_marker
from ..reliability_cases import FAULT_TABLE, OOM_ABOVE, OOM_ABOVE_LARGEST_THAT_FITS, Fault

SCHEMA = json.loads(SCHEMA_PATH.read_text())
THROUGHPUT_ONLY = ["--no-breakdown", "--no-memory", "--no-health", "--no-predictions"]


def run_marked(fault: Fault, tmp_path, marker: str):
    import subprocess
    import sys

    env = {**cli_env(), "SKYLINE_TEST_MARKER": marker}
    # The row's flags come after the quick ones: for a flag given twice argparse keeps the last, so they win.
    # Only the throughput: every row's fault strikes in the first iteration, before any other phase.
    return subprocess.run([sys.executable, "-m", "skyline_tui", fault.path, "--json", "-", *QUICK_FLAGS,
                           *fault.flags, *THROUGHPUT_ONLY], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("fault", FAULT_TABLE, ids=[f.name for f in FAULT_TABLE])
def test_fault_gives_a_clear_error_report_and_leaves_nothing_behind(fault: Fault, tmp_path):
    marker = new_marker()
    result = run_marked(fault, tmp_path, marker)
    assert result.returncode == 1, result.stderr[-2000:]
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    error = report["error"]
    assert error["kind"] == fault.kind, error
    assert fault.message in error["message"], error
    if fault.file is not None:
        assert error["file"] == fault.file
    if fault.line_text is not None:
        assert error["line"] == fault.expected_line(), error
    if fault.function is not None:
        assert error["function"] == fault.function
    # One screen: the message is one line, and stderr says what and where.
    assert "\n" not in error["message"]
    first_line = next(line for line in result.stderr.splitlines() if line.startswith("skyline-tui: " + fault.kind))
    assert fault.kind in first_line
    if fault.file and fault.line_text:
        assert f"{fault.file}:{fault.expected_line()}" in result.stderr
    assert "skyline_tui/" not in result.stderr, "our own frames leaked into the user's error"
    assert left_behind(marker) == [], "processes (or unreaped zombies) left behind"


def test_out_of_memory_above_the_default_batch_is_recovered_and_bounds_max_batch_size(tmp_path):
    import subprocess
    import sys

    marker = new_marker()
    result = subprocess.run([sys.executable, "-m", "skyline_tui", str(OOM_ABOVE), "--json", "-", *QUICK_FLAGS,
                             "--no-breakdown", "--no-health"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL,
                            env={**cli_env(), "SKYLINE_TEST_MARKER": marker})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["error"] is None
    assert report["throughput"] is not None and report["memory"] is not None
    predictions = report["predictions"]
    # The OOM is reported (the smallest batch that ran out), and bounds the largest batch.
    assert predictions["oom_batch_size"] is not None, predictions
    assert predictions["oom_batch_size"] > OOM_ABOVE_LARGEST_THAT_FITS, predictions
    assert report["batch_size"] <= predictions["max_batch_size"] <= OOM_ABOVE_LARGEST_THAT_FITS, predictions
    assert all(sample["batch_size"] <= OOM_ABOVE_LARGEST_THAT_FITS for sample in predictions["samples"])
    assert left_behind(marker) == [], "processes (or unreaped zombies) left behind"


def test_a_hang_in_a_batch_size_measured_in_its_own_process_points_at_the_users_line(tmp_path):
    # On CPU each predicted batch size runs in a process of its own (profiler/predictions/processes.py): when the
    # timeout strikes there, the stack that names the user's line is that process's, not the run's (which
    # only waits for it).  The fixture runs at its default batch size and loops forever above it.
    import subprocess
    import sys

    marker = new_marker()
    hangs = OOM_ABOVE.parent / "hangs_above.py"
    result = subprocess.run([sys.executable, "-m", "skyline_tui", str(hangs), "--json", "-", *QUICK_FLAGS,
                             "--no-breakdown", "--no-memory", "--no-health", "--timeout", "10"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL,
                            env={**cli_env(), "SKYLINE_TEST_MARKER": marker})
    assert result.returncode == 1, result.stderr[-2000:]
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "timeout" and "while measuring predictions" in error["message"], error
    assert "an infinite loop?" in error["message"]  # its profiled batch ran fast: no iteration explains the time
    loop = next(i for i, text in enumerate(hangs.read_text().splitlines(), 1) if "while True: time.sleep" in text)
    assert (error["file"], error["line"], error["function"]) == ("hangs_above.py", loop, "iteration"), error
    assert f"hangs_above.py:{loop}" in result.stderr
    assert left_behind(marker) == [], "processes (or unreaped zombies) left behind"


def test_no_listening_socket_is_opened_during_a_run(tmp_path):
    import subprocess
    import sys
    import time

    from ..conftest import FIXTURES
    from ..processes import listening_socket_inodes, socket_inodes_of

    marker = new_marker()
    env = {**cli_env(), "SKYLINE_TEST_MARKER": marker}
    # The run lives until its timeout: 4 s of a looping run child is 20 looks at all three processes.
    proc = subprocess.Popen([sys.executable, "-m", "skyline_tui", str(FIXTURES / "faults" / "infinite_loop.py"),
                             "--json", str(tmp_path / "out.json"), "--timeout", "4"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        checked = 0
        while proc.poll() is None:
            pids = processes_with_marker(marker)
            listening = listening_socket_inodes()
            for pid in pids:
                assert not (socket_inodes_of(pid) & listening), f"process {pid} listens on a socket"
            checked += len(pids)
            time.sleep(0.2)
        assert checked >= 3  # the CLI, the worker and the run child were all looked at
    finally:
        proc.kill()
        proc.wait()


def test_no_process_of_a_run_ever_binds_or_listens_on_a_socket(tmp_path):
    """The sampling test above can miss a socket that lives between two looks; strace sees every bind and
    listen call of the CLI, the worker and the run child, for a whole run with every phase."""
    import re
    import shutil
    import subprocess
    import sys

    from ..conftest import FIXTURES

    strace = shutil.which("strace")
    if strace is None or subprocess.run([strace, "-f", "--seccomp-bpf", "-qq", "-e", "trace=listen", "true"],
                                        capture_output=True).returncode != 0:
        pytest.skip("needs strace, allowed to trace (ptrace) its children")
    trace = tmp_path / "trace"
    marker = new_marker()
    result = subprocess.run([strace, "-f", "--seccomp-bpf", "-qq", "-e", "trace=bind,listen,execve",
                             "-e", "signal=none",
                             "-o", str(trace), sys.executable, "-m", "skyline_tui",
                             str(FIXTURES / "faults" / "healthy.py"), "--json", "-", *QUICK_FLAGS],
                            capture_output=True, text=True, cwd=tmp_path, timeout=180, stdin=subprocess.DEVNULL,
                            env={**cli_env(), "SKYLINE_TEST_MARKER": marker})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["error"] is None and report["predictions"] is not None  # every phase ran
    lines = trace.read_text().splitlines()
    assert any("execve(" in line and "skyline_tui.worker" in line for line in lines), "the worker was not traced"
    calls = [line for line in lines if re.match(r"\d+\s+(bind|listen)\(", line)]
    assert calls == [], "a process of the run bound or listened on a socket"
    assert left_behind(marker) == []
