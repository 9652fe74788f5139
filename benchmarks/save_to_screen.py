"""Save -> a changed samples/s on screen: what a user of the app sees, split by where the time goes.

The real app (Textual, headless through ``App.run_test``), the real watcher (watchdog), the real worker; a real
write of the entry point (a copy of a bundled sample in a temporary folder).  Each save is timed from the end of
the write to the first frame the app composes after its throughput pane shows the new run's samples/s (headless,
the frame is not written to a terminal: that write is all that is left out).  Timestamps are read on the way,
by wrapping the watcher's, the app's and the client's methods from here (no code of the app changes for it):

    event      the first filesystem event for the save (watchdog's thread)
    settled    the burst settled: the debounce's quiet time, then the changed files compared
    saved      the app took the save (its UI thread)
    asked      the request went to the worker (the app re-read the source pane first, then its submit thread ran)
    started    the worker forked the run (RunStarted back in the app's process)
    loaded     the entry point loaded (the run's throughput phase began)
    number     the first samples/s arrived (warm-up and the first rounds)
    shown      the throughput pane shows it
    rendered   every other pane re-rendered from the report (the app's handler of it returned)
    painted    the next frame with it

After the number the run is cancelled (as a next save would) and the machine left idle for a moment, so that
every save starts alike.  ``--before DIR`` runs the same saves against another checkout (e.g. ``git archive
main``) in child processes alternating with this one, so both sides meet the same machine load.

    python benchmarks/save_to_screen.py [--sample mlp] [--width 1024] [--saves 5] [--rounds 3] [--before DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
STEPS = ("event", "settled", "saved", "asked", "started", "loaded", "number", "shown", "rendered", "painted")
TIMEOUT_S = 60.0


def prepare_project(folder: Path, sample: str, width: Optional[int]) -> Path:
    project = folder / sample
    shutil.copytree(REPO / "samples" / sample, project)
    entry = project / "entry.py"
    if width is not None:
        text = entry.read_text()
        entry.write_text(text.replace("WIDTH = 4096 if DEVICE == \"cuda\" else 512", f"WIDTH = {width}"))
    return entry


def save(entry: Path, number: int) -> float:
    """Rewrite the entry point (a comment changes) and return when the write ended."""
    marker = "# skyline-bench save "
    lines = [line for line in entry.read_text().splitlines() if not line.startswith(marker)]
    entry.write_text("\n".join(lines) + f"\n{marker}{number}\n")
    return time.perf_counter()


def run_saves(entry: Path, saves: int) -> list[dict[str, float]]:
    """In this process: the app on ``entry``; per save, each step's time since the write ended (seconds)."""
    from skyline_tui.config import ProfileConfig
    from skyline_tui.tui.app import SkylineApp
    from skyline_tui.tui.profile_on_save import ProfileOnSave
    from skyline_tui.tui.views import format as fmt
    from skyline_tui.tui.views.throughput import ThroughputPane
    from skyline_tui.tui.watch import ProjectWatcher
    from skyline_tui.worker import protocol as p
    from skyline_tui.worker.client import WorkerClient

    lock = threading.Lock()
    marks: dict[str, float] = {}
    # The save's run is newer than after_run; its samples/s and iteration time, once known.
    armed: dict[str, Any] = {"after_run": 0, "number": None, "step_ms": None}

    def mark(step: str) -> None:
        with lock:
            if armed["after_run"] >= 0 and step not in marks:
                marks[step] = time.perf_counter()

    on_event = ProjectWatcher._on_event

    def watched_event(self, paths, *args):  # type: ignore[no-untyped-def]
        if any(path == str(entry) for path in paths):
            mark("event")
        on_event(self, paths, *args)

    ProjectWatcher._on_event = watched_event  # type: ignore[method-assign]
    files_changed = ProfileOnSave._files_changed

    def settled(self, paths):  # type: ignore[no-untyped-def]
        mark("settled")
        files_changed(self, paths)

    ProfileOnSave._files_changed = settled  # type: ignore[method-assign]
    show = ThroughputPane.show

    def shown(self, throughput, *args, **kwargs):  # type: ignore[no-untyped-def]
        show(self, throughput, *args, **kwargs)
        with lock:
            new = armed["number"] is not None and throughput is not None and \
                throughput.samples_per_second == armed["number"]
        if new:
            mark("shown")

    ThroughputPane.show = shown  # type: ignore[method-assign]
    painted = threading.Event()

    class TimedApp(SkylineApp):
        def _display(self, screen, renderable):  # type: ignore[no-untyped-def]
            super()._display(screen, renderable)
            if renderable is not None and "shown" in marks and "painted" not in marks:
                mark("painted")
                painted.set()

        def _render_report(self) -> None:
            super()._render_report()
            if "shown" in marks:
                mark("rendered")

        def on_files_saved(self, message):  # type: ignore[no-untyped-def]
            mark("saved")
            super().on_files_saved(message)

    clients: list[WorkerClient] = []

    def source(on_event):  # type: ignore[no-untyped-def]
        def record(event: p.Event) -> None:
            if getattr(event, "run_id", None) is not None and event.run_id > armed["after_run"]:
                if isinstance(event, p.RunStarted):
                    mark("started")
                elif isinstance(event, p.RunProgress) and event.phase == "throughput":
                    mark("loaded")
                elif isinstance(event, p.RunReport) and event.report.throughput is not None and not event.final:
                    with lock:
                        if armed["number"] is None:
                            armed["number"] = event.report.throughput.samples_per_second
                            armed["step_ms"] = event.report.throughput.iteration_ms
                    mark("number")
            on_event(event)

        class AskingClient(WorkerClient):
            def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                mark("asked")
                return super().submit(*args, **kwargs)

        client = AskingClient(record)
        clients.append(client)
        return client

    config = ProfileConfig.interactive()  # what `skyline-tui ENTRY` asks for: every phase
    app = TimedApp(str(entry), config=config, source=source, watch=True)
    results: list[dict[str, float]] = []

    async def drive() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait(pilot, lambda: app.state.live.shown is not None and app.state.live.shown.throughput is not None
                       and app.save_watcher.watching)
            for number in range(saves):
                clients[-1].cancel()  # the start-up run (or the last save's): its later phases must not load this
                await wait(pilot, lambda: not clients[-1]._active)  # save
                client = clients[-1]
                await asyncio.sleep(0.5)
                with lock:
                    marks.clear()
                    armed["after_run"], armed["number"] = max(app.state.current_run or 0, client._next_run_id - 1), None
                painted.clear()
                written = save(entry, number)
                await wait(pilot, painted.is_set)
                with lock:
                    split = {step: marks[step] - written for step in STEPS if step in marks}
                    split["step_ms"] = armed["step_ms"]
                missing = [step for step in STEPS if step not in split]
                if missing:
                    raise RuntimeError(f"save {number}: no time for {missing}")
                text = "\n".join(strip.text for strip in app.query_one(ThroughputPane).render_lines(
                    _region(app.query_one(ThroughputPane))))
                if fmt.rate(armed["number"]) not in text:
                    raise RuntimeError(f"save {number}: the pane does not show {fmt.rate(armed['number'])}")
                results.append(split)
            clients[-1].cancel()

    try:
        asyncio.run(drive())
    finally:
        for client in clients:
            client.close()
    return results


def _region(widget):  # type: ignore[no-untyped-def]
    from textual.geometry import Region

    return Region(0, 0, widget.outer_size.width, widget.outer_size.height)


async def wait(pilot, predicate, timeout: float = TIMEOUT_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the app")
        await asyncio.sleep(0.005)


def child_round(checkout: Path, sample: str, width: Optional[int], saves: int) -> list[dict[str, float]]:
    """``saves`` saves in a fresh process that imports skyline_tui from ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    args = [sys.executable, __file__, "--child", "--sample", sample, "--saves", str(saves)]
    if width is not None:
        args += ["--width", str(width)]
    done = subprocess.run(args, env=env, cwd=checkout, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the round against {checkout} failed:\n{done.stderr[-3000:]}")
    result: list[dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def print_split(name: str, splits: list[dict[str, float]]) -> None:
    """Medians of each step's time since the write, and of each step's own share (since the step before)."""
    at = {step: statistics.median(split[step] for split in splits) for step in STEPS}
    own = {}
    for split in splits:
        previous = 0.0
        for step in STEPS:
            own.setdefault(step, []).append(split[step] - previous)
            previous = split[step]
    print(f"{name:10s} saves {len(splits):2d}   save -> painted: median {at['painted']:.3f} s "
          f"(min {min(s['painted'] for s in splits):.3f}, max {max(s['painted'] for s in splits):.3f})")
    print(f"{'':10s} " + "  ".join(f"{step} +{statistics.median(own[step]) * 1000:.0f}" for step in STEPS) + "  (ms); "
          f"the model's step {statistics.median(split['step_ms'] for split in splits):.1f} ms (this run's number)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="mlp")
    parser.add_argument("--width", type=int, default=None, help="the mlp's width (its WIDTH line rewritten)")
    parser.add_argument("--saves", type=int, default=5, help="saves per round")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per side (alternating with --before)")
    parser.add_argument("--before", type=Path, default=None, help="another checkout, timed in alternating rounds")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skyline-save-to-screen-") as folder:
        if args.child:
            entry = prepare_project(Path(folder), args.sample, args.width)
            print(json.dumps(run_saves(entry, args.saves)))
            return 0
    sides: dict[str, Path] = {"after": REPO} if args.before is None else {"before": args.before, "after": REPO}
    splits: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    order = list(sides)
    for number in range(args.rounds):
        for name in order if number % 2 == 0 else reversed(order):
            splits[name] += child_round(sides[name], args.sample, args.width, args.saves)
    print(f"{args.sample}{f' width {args.width}' if args.width else ''}: {args.saves} saves a round, {args.rounds} "
          f"round(s) a side{', alternating' if args.before else ''}; each step: ms since the step before (medians)")
    for name in sides:
        print_split(name, splits[name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
