"""The run's event stream as a view would consume it: typed events from the launcher, the script's output as
events when captured, every event through its JSON line and back."""

from __future__ import annotations

import dataclasses
import re

from skyline_tui.report import Health, HealthFlag, MetricSeries, ModuleHealth, NonFinite
from skyline_tui.run import events as ev
from skyline_tui.run.launcher import RunOptions, Target, launch


def test_captured_output_arrives_as_events_and_the_exit_comes_last(tmp_path):
    script = tmp_path / "talk.py"
    script.write_text("import sys\nprint('hello', flush=True)\nprint('oops', file=sys.stderr, flush=True)\n"
                      "sys.exit(4)\n")
    seen: list[ev.Event] = []
    code = launch(Target(script=str(script), module=None), RunOptions(capture_output=True), seen.append)
    assert code == 4
    output = {(e.stream, e.text) for e in seen if isinstance(e, ev.ScriptOutput)}
    assert output == {("stdout", "hello\n"), ("stderr", "oops\n")}
    assert isinstance(seen[0], ev.ScriptStarted) and seen[0].argv == (str(script),)
    finished = next(e for e in seen if isinstance(e, ev.ChildFinished))
    assert finished.exit_code == 4 and finished.why_no_steps == "the script never imported torch"
    assert seen[-1] == ev.ScriptExited(exit_code=4, message="the script exited with status 4")


def test_captured_lines_of_forked_processes_come_whole(tmp_path):
    """The live view runs the script unbuffered, and print writes its text and its newline apart: the lines of the
    processes a script forks (mnist_hogwild's trainers) came cut into one another.  Now a line at a time."""
    script = tmp_path / "forks.py"
    script.write_text("import os\n"
                      "pids = []\n"
                      "for name in ('A', 'B'):\n"
                      "    pid = os.fork()\n"
                      "    if pid == 0:\n"
                      "        for i in range(300): print(name, os.getpid(), i)\n"
                      "        os._exit(0)\n"
                      "    pids.append(pid)\n"
                      "for i in range(300): print('P', os.getpid(), i)\n"
                      "for pid in pids: os.waitpid(pid, 0)\n")
    seen: list[ev.Event] = []
    assert launch(Target(script=str(script), module=None), RunOptions(capture_output=True), seen.append) == 0
    lines = [e.text for e in seen if isinstance(e, ev.ScriptOutput)]
    assert len(lines) == 900 and all(re.fullmatch(r"[ABP] \d+ \d+\n", line) for line in lines), \
        [line for line in lines if not re.fullmatch(r"[ABP] \d+ \d+\n", line)][:5]


def test_every_event_survives_its_json_line():
    health = Health(iterations=2, modules=(ModuleHealth(
        module="fc1", type="Linear", file="train.py", line=12,
        metrics={"grad_norm": MetricSeries(last=1.0, median=1.5, series=(2.0, None, 1.0))},
        flags=(HealthFlag("no_gradient", "none"),)),))
    where = NonFinite(module="fc1", phase="forward", file="train.py", line=12, iteration=3, message="inf")
    samples = [
        ev.ScriptStarted(pid=1, script="train.py", argv=("train.py", "--lr", "1"), cwd="/tmp"),
        ev.TorchSeen(torch_version="2.13.0", cuda=False),
        ev.SamplesFrom(module="Net", tensor="args[0]", dim=0),
        ev.Step(index=3, end_s=1.5, wall_ms=12.25, forward_ms=1.0, backward_ms=2.0, optimizer_ms=0.5,
                evaluation_ms=0.0, other_ms=8.75, samples=None, losses=(0.5, None), non_finite_losses=1,
                rss_bytes=123, health_sampled=True, loss=None, loss_terms=2),
        ev.HealthSampled(step=3, values={"fc1": {"grad_norm": 1.0, "update_to_weight": None}},
                         flagged={"fc1": ("no_gradient",)}),
        ev.HealthJudged(step=3, health=health),
        ev.NonFiniteSeen(step=3, where=where, message="inf"),
        ev.ScriptOutput(stream="stdout", text="ünïcode\n"),
        ev.ChildFinished(exit_code=0, error=None, interrupted=False, why_no_steps=None, evaluation_passes=1,
                         evaluation_ms=2.0, backward_passes=3, optimizer_steps=3, peak_rss_bytes=10,
                         peak_allocated_bytes=None, peak_reserved_bytes=None),
        ev.ScriptExited(exit_code=-2, message="the script was ended by SIGINT"),
        ev.Metrics(steps=(0, 1), names=("loss", "acc"), values=(0.5, None)),
    ]
    assert {type(e) for e in samples} == set(ev.Event.__args__)  # type: ignore[attr-defined]
    for event in samples:
        line = ev.encode(event)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert ev.decode(line) == event, event
    step = samples[3]
    assert isinstance(step, ev.Step)
    assert ev.decode(ev.encode(dataclasses.replace(step, samples=64))).samples == 64


def test_steps_packed_by_the_script_side_arrive_as_the_steps_it_closed():
    """The hot path: records packed in the script's process, one ``steps`` line, unpacked by the launcher."""
    import os

    from skyline_tui.run.channel import Sender

    read_end, write_end = os.pipe()
    sender = Sender(write_end)
    nan = float("nan")
    # index, end_s, wall, forward, backward, optimizer, evaluation, other, samples, non-finite, allocated,
    # reserved, peak, rss, health, the step's loss and its terms; the losses' count; the losses (a GAN's two, one
    # of them not finite: the step's loss, their sum, is not either).
    sender.send_step((1, 0.25, 10.5, 1.0, 2.0, 3.0, 0.0, 4.5, 64, 0, nan, nan, nan, 4096, 0.0, 2.5, 1, 1, 2.5), 0.0)
    sender.send_step((2, 0.5, 12.0, 1.5, 2.5, 3.5, 0.5, 4.0, nan, 1, 2**40, 2**41, 2**40 + 7, nan, 1.0, nan, 2, 2,
                      0.75, nan), 0.01)
    sender.send_step((3, 0.75, 9.0, 1.0, 1.0, 1.0, 0.0, 6.0, 32, 0, nan, nan, nan, nan, 0.0, nan, 0, 0), 0.02)
    sender.close()
    with os.fdopen(read_end, "rb") as pipe:
        lines = pipe.read().splitlines()
    assert len(lines) == 1 and lines[0].startswith(b'{"type":"steps",')
    assert ev.decode_all(lines[0]) == [
        ev.Step(index=1, end_s=0.25, wall_ms=10.5, forward_ms=1.0, backward_ms=2.0, optimizer_ms=3.0,
                evaluation_ms=0.0, other_ms=4.5, samples=64, losses=(2.5,), non_finite_losses=0, rss_bytes=4096,
                loss=2.5, loss_terms=1),
        ev.Step(index=2, end_s=0.5, wall_ms=12.0, forward_ms=1.5, backward_ms=2.5, optimizer_ms=3.5,
                evaluation_ms=0.5, other_ms=4.0, samples=None, losses=(0.75, None), non_finite_losses=1,
                allocated_bytes=1099511627776, reserved_bytes=2199023255552, peak_allocated_bytes=1099511627783,
                health_sampled=True, loss=None, loss_terms=2),
        ev.Step(index=3, end_s=0.75, wall_ms=9.0, forward_ms=1.0, backward_ms=1.0, optimizer_ms=1.0,
                evaluation_ms=0.0, other_ms=6.0, samples=32, losses=()),
    ]
    assert [type(step.index) for step in ev.decode_all(lines[0])] == [int, int, int]  # 64.0 == 64: say it
    assert type(ev.decode_all(lines[0])[1].allocated_bytes) is int
    cut = lines[0][:40] + b'"}'
    try:
        ev.decode_all(cut)
    except ev.ReportFormatError:
        pass
    else:
        raise AssertionError("a cut steps line must not decode")


def test_the_launcher_side_imports_neither_torch_nor_a_ui_library(tmp_path):
    import subprocess
    import sys

    from tests.run_support import environment

    script = tmp_path / "plain.py"
    script.write_text("print('ok')\n")
    probe = ("import sys\nfrom skyline_tui.run.command import main\ncode = main(['-q', '--no-history', sys.argv[1]])\n"
             "loaded = [m for m in ('torch', 'textual', 'rich') if m in sys.modules]\n"
             "print('LOADED', loaded, code)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(script)], env=environment(), capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.splitlines()[-1] == "LOADED [] 0", done.stderr
