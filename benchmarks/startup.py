"""Time from launching the UI to its first frame, before any profile arrives (target: < 0.3 s).

Each measurement is a fresh interpreter running the real SkylineApp headless with a source that never
reports, which exits on Textual's ``Ready`` event (sent once the first frame is on screen).  Printed beside
the same interpreter doing nothing and only importing textual, since absolute times on a shared machine
are noisy while ratios measured in one run are not.  Also the real command, ``python -m skyline_tui
ENTRY`` in a pseudo-terminal (CLI, worker start and all), until the source is on screen.  Also times lexing a
5,000-line file for the source pane.  Usage: python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENTRY = REPO / "samples" / "mlp" / "entry.py"

APP_TO_FIRST_FRAME = f"""
import time
started = time.perf_counter()
import sys
sys.path.insert(0, {str(REPO)!r})
from skyline_tui.tui.app import SkylineApp

class Silent:
    def __init__(self, on_event): pass
    def start(self): pass
    def submit(self, entry, root, config): return 1
    def cancel(self): pass
    def close(self): pass

class Timed(SkylineApp):
    def on_ready(self):
        print(f"{{time.perf_counter() - started:.6f}}")
        self.exit()

Timed({str(ENTRY)!r}, source=Silent, profile_on_start=False).run(headless=True, size=(100, 30))
"""


def wall(args: list[str]) -> tuple[float, str]:
    began = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=REPO).stdout
    return time.perf_counter() - began, out


def real_command_to_first_frame(timeout: float = 30.0) -> float:
    """``python -m skyline_tui ENTRY`` in a pseudo-terminal, as a user starts it (worker, watcher and all):
    seconds from launch until the screen shows the source pane's first line, then ``q``."""
    import os
    import pty
    import select
    import signal

    first_line = ENTRY.read_text().splitlines()[0].strip()[:20]
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "skyline_tui", str(ENTRY), "--no-watch"], stdin=slave,
                            stdout=slave, stderr=slave, env=env, cwd=REPO, start_new_session=True)
    os.close(slave)
    seen, elapsed = b"", None
    try:
        while time.perf_counter() - began < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
            if first_line.encode() in seen:
                elapsed = time.perf_counter() - began
                break
        os.write(master, b"q")
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    finally:
        os.close(master)
    if elapsed is None:
        raise RuntimeError("the app never drew its source pane")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs

    bare, textual_only, app_wall, app_inside, real = [], [], [], [], []
    for _ in range(runs):  # interleaved, so drift in machine load hits every column alike
        real.append(real_command_to_first_frame())
        bare.append(wall([sys.executable, "-c", "pass"])[0])
        textual_only.append(wall([sys.executable, "-c", "import textual.app, textual.widgets"])[0])
        seconds, out = wall([sys.executable, "-c", APP_TO_FIRST_FRAME])
        app_wall.append(seconds)
        app_inside.append(float(out.strip().splitlines()[-1]))

    med = statistics.median
    print(f"runs: {runs} (medians)")
    print(f"python doing nothing         {med(bare):7.3f} s")
    print(f"python importing textual     {med(textual_only):7.3f} s")
    print(f"launch to first frame        {med(app_wall):7.3f} s (whole process, including exit)")
    print(f"  of which after interpreter {med(app_inside):7.3f} s   target 0.300 s -> "
          f"{med(app_inside) / 0.3:.2f}x of target")
    print(f"real command in a pty        {med(real):7.3f} s (launch to the source on screen: CLI, worker "
          f"start, whole interpreter) = {med(real) / max(med(bare), 1e-9):.1f}x python doing nothing")
    print(f"first frame / import textual {med(app_inside) / max(med(textual_only) - med(bare), 1e-9):.2f}x")

    sys.path.insert(0, str(REPO))
    from skyline_tui.tui.views.source import lex_file  # noqa: E402 (measured after the subprocesses)

    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.py"
        big.write_text("".join(f"def f{i}(x, y=({i}, 'a')):\n    return x * y[0]  # c\n" for i in range(2500)))
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            lexed = lex_file(big)
            times.append(time.perf_counter() - began)
        print(f"lex {len(lexed.lines):,} lines           {med(times):7.3f} s (once per file and change)")


if __name__ == "__main__":
    main()
