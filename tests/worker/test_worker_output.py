"""Pure parts of the worker: the user's output past the limit, and faulthandler stacks turned into a line."""

from __future__ import annotations

from skyline_tui.profiler.frames import ProjectFiles
from skyline_tui.worker.output import RunOutput
from skyline_tui.worker.stacks import locate

OUT, ERR = 10, 11


def test_output_under_the_limit_is_relayed_as_it_comes():
    output = RunOutput({OUT: "stdout", ERR: "stderr"}, limit=100, tail=40)
    assert output.feed(OUT, b"hello\n") == [("stdout", "hello\n")]
    assert output.feed(ERR, "caf\u00e9\n".encode()[:4]) == [("stderr", "caf")]  # half a character waits
    assert output.feed(ERR, "caf\u00e9\n".encode()[4:]) == [("stderr", "\u00e9\n")]
    assert output.flush() == []


def test_past_the_limit_the_newest_whole_lines_are_kept_and_the_rest_counted():
    output = RunOutput({OUT: "stdout", ERR: "stderr"}, limit=10, tail=30)
    assert output.feed(OUT, b"first line\n") != []  # reaches the limit
    lines = b"".join(b"line %02d\n" % i for i in range(20))  # 8 bytes each
    for start in range(0, len(lines), 16):
        assert output.feed(OUT, lines[start:start + 16]) == []
    flushed = output.flush()
    assert flushed[0][0] == "stderr" and "bytes of output were dropped here" in flushed[0][1]
    assert flushed[1] == ("stdout", "line 17\nline 18\nline 19\n")
    assert f"{len(lines) - 24:,} bytes" in flushed[0][1]
    assert output.flush() == []  # nothing new since
    output.feed(ERR, b"late\n")
    assert output.flush() == [("stderr", "late\n")]


def test_a_fault_handler_dump_points_at_the_innermost_project_frame(tmp_path):
    (tmp_path / "entry.py").write_text("import os\n\ndef go():\n    os._exit(3)\n")
    files = ProjectFiles(tmp_path)
    dump = (
        "Fatal Python error: Segmentation fault\n\nCurrent thread 0x01 (most recent call first):\n"
        f'  File "{tmp_path}/other.py", line 9 in old\n\n'
        "os._exit(3) called\n"
        "Stack (most recent call first):\n"
        '  File "/usr/lib/python3.11/site-packages/torch/nn/module.py", line 5 in _call_impl\n'
        f'  File "{tmp_path}/entry.py", line 4 in go\n'
        f'  File "{tmp_path}/entry.py", line 7 in <module>\n'
        "\nExtension modules: torch._C (total: 1)\n"
    ).encode()
    where = locate(dump, files)
    assert (where.file, where.line, where.function, where.exit_code) == ("entry.py", 4, "go", 3)
    assert where.traceback.splitlines() == [
        '  File "entry.py", line 7, in <module>',
        '  File "entry.py", line 4, in go',
        "    os._exit(3)",
    ]
    assert locate(b"Stack (most recent call first):\n  File \"/elsewhere.py\", line 1 in f\n", files) is None
