"""How a supervised run ends is the script's: Ctrl-C reaches its own handler, its status is the run's status;
and what skyline-tui refuses, it refuses before starting anything."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess

from tests.run_support import TRAIN, command, environment, read_pty, step_count


def test_sigint_to_the_run_reaches_the_scripts_own_keyboardinterrupt_handler(tmp_path):
    summary = tmp_path / "summary.json"
    run = subprocess.Popen(command("--json", str(summary), "--no-history", str(TRAIN / "keyboard_interrupt.py")),
                           cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert run.stdout.readline() == "READY\n"
        run.send_signal(signal.SIGINT)  # to skyline-tui, as `kill -INT` would: it passes it on once
        out, err = run.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):  # on a failure, the script too: it outlives skyline-tui
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert run.returncode == 3, err  # the script's handler chose 3
    taken = int(out.split("INTERRUPTED steps=")[1].split()[0])
    assert out.count("INTERRUPTED") == 1
    result = json.loads(summary.read_text())
    assert result["exit_code"] == 3 and result["steps"] == taken >= 5


def test_an_uncaught_keyboardinterrupt_ends_the_run_as_python_does(tmp_path):
    script = tmp_path / "uncaught.py"
    script.write_text("import os, signal\nprint('BEFORE', flush=True)\nos.kill(os.getpid(), signal.SIGINT)\n"
                      "import time\ntime.sleep(30)\n")
    plain = subprocess.run(["python", str(script)], capture_output=True, text=True, timeout=60)
    run = subprocess.run(command("--no-history", "-q", str(script)), cwd=tmp_path, env=environment(),
                         capture_output=True, text=True, timeout=120)
    assert plain.returncode == -signal.SIGINT  # python itself: killed by SIGINT, after its traceback
    assert run.returncode == 128 + signal.SIGINT  # as a shell reports it
    assert "KeyboardInterrupt" in run.stderr and run.stdout == plain.stdout == "BEFORE\n"


def test_the_scripts_exit_status_and_output_pass_through(tmp_path):
    script = tmp_path / "status.py"
    script.write_text("import sys\nprint('out', sys.argv[1:])\nprint('err', file=sys.stderr)\nsys.exit(7)\n")
    run = subprocess.run(command("--no-history", "-q", str(script), "--json", "x"), cwd=tmp_path,
                         env=environment(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 7
    assert run.stdout == "out ['--json', 'x']\n"  # the script's arguments, even ones that look like ours
    assert run.stderr == "err\n"  # -q: nothing of ours


def test_torchrun_is_refused_with_a_clear_message(tmp_path):
    run = subprocess.run(command("torchrun", "--nproc-per-node", "2", "train.py"), cwd=tmp_path,
                         env=environment(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "supervises one process" in run.stderr
    env = environment()
    env["WORLD_SIZE"] = "4"
    run = subprocess.run(command(str(TRAIN / "gan.py")), cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "WORLD_SIZE=4" in run.stderr and step_count(run.stdout) == 0


def test_a_missing_script_is_refused(tmp_path):
    run = subprocess.run(command("--no-history", "nope.py"), cwd=tmp_path, env=environment(), capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.strip() == "skyline-tui: no such script: nope.py"


def test_ctrl_c_at_the_terminal_reaches_the_scripts_handler_once(tmp_path):
    """Ctrl-C typed at a terminal: the terminal signals the whole foreground group, the script's process as well
    as skyline-tui's, which must not send it a second one (the script's handler would be interrupted)."""
    import pty
    import time

    pid, master = pty.fork()
    if pid == 0:  # the child: a session of its own on the pty, as a shell would start it
        os.chdir(tmp_path)
        os.execve(command()[0], [*command("--no-history", "-q", "--headless", str(TRAIN / "keyboard_interrupt.py"))],
                  environment())  # a terminal would open the live view: this is the headless path's Ctrl-C
    seen = b""
    try:
        deadline = time.monotonic() + 120
        while b"READY" not in seen and time.monotonic() < deadline:
            chunk = read_pty(master, deadline)
            if chunk is None:  # the run is over before it was ready: the asserts below say how
                break
            seen += chunk
        os.write(master, b"\x03")  # Ctrl-C, as typed
        while time.monotonic() < deadline:
            chunk = read_pty(master, deadline)
            if chunk is None:  # the pty closed: the run is over
                break
            seen += chunk
    finally:
        status = None
        while status is None and time.monotonic() < deadline + 30:
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
            time.sleep(0.1)
        if status is None:  # Ctrl-C never reached the script: the run goes on
            os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(master)
    text = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 3, text
    assert text.count("INTERRUPTED steps=") == 1 and "Traceback" not in text, text
