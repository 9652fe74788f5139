"""What one ``track.log`` call costs in the script's process (plain run: buffered, flushed into a real
SQLite store every 1,000 records; under a run: Metrics events over a pipe), beside an empty Python call
with the same arguments.

Measured in one process, alternating (A B A B ...) blocks of N calls, medians over the blocks: the store's
flushes fall inside the blocks, so the figure includes their share.  Usage:
python benchmarks/track_overhead.py [--calls N] [--blocks B] [--metrics K]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def empty(step=None, **metrics):  # noqa: ANN001, ANN201 - the baseline: a call and its keyword dict
    return None


def block(fn, calls: int, metrics: int) -> float:  # noqa: ANN001
    names = [f"m{i}" for i in range(metrics)]
    values = {name: 0.5 for name in names}
    start = time.perf_counter()
    for step in range(calls):
        values[names[0]] = step * 1e-3
        fn(step=step, **values)
    return (time.perf_counter() - start) / calls


def run_like_tracker():  # noqa: ANN201
    """A tracker wired as in a run's child: batches as Metrics events through the run's Sender over a pipe,
    which a thread here drains (the launcher's part)."""
    import threading

    from skyline_tui.run.channel import Sender
    from skyline_tui.track.recorder import Tracker
    from skyline_tui.track.run_sink import MAX_DELAY_S, RunStreamSink

    read_end, write_end = os.pipe()

    def drain() -> None:
        while os.read(read_end, 1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()
    sender = Sender(write_end)
    tracker = Tracker()
    tracker.use_sink(lambda: RunStreamSink(lambda line: sender.send_line(line, time.perf_counter())),
                     max_delay_s=MAX_DELAY_S)  # as run/child.py installs it
    return tracker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--metrics", type=int, default=1, help="metrics per call")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="track-bench-")
    os.environ["SKYLINE_TUI_HISTORY"] = os.path.join(folder, "history.db")
    from skyline_tui import track

    track.log(step=0, warmup=1.0)  # the sink (store, run row) is made at the first flush; warm it up
    track.flush()
    from skyline_tui.track.recorder import Tracker

    class Discard:
        def write(self, records):  # noqa: ANN001, ANN202
            pass

        def close(self):  # noqa: ANN202
            pass

    buffered_only = Tracker()
    buffered_only.use_sink(Discard)  # the same checks and buffer, batches handed to a sink that keeps nothing
    over_pipe = run_like_tracker()
    tracked, plain, discarded, piped = [], [], [], []
    for _ in range(args.blocks):
        tracked.append(block(track.log, args.calls, args.metrics))
        plain.append(block(empty, args.calls, args.metrics))
        discarded.append(block(buffered_only.log, args.calls, args.metrics))
        piped.append(block(over_pipe.log, args.calls, args.metrics))
    track.flush()
    over_pipe.close()
    t, p, d = statistics.median(tracked), statistics.median(plain), statistics.median(discarded)
    r = statistics.median(piped)
    print(f"{args.metrics} metric(s) a call, medians of {args.blocks} alternating blocks of {args.calls:,} calls:")
    print(f"  an empty call            {p * 1e9:8,.0f} ns")
    print(f"  track.log, no store      {d * 1e9:8,.0f} ns  (+{(d - p) * 1e9:,.0f} ns: checks and buffer)")
    print(f"  track.log into SQLite    {t * 1e9:8,.0f} ns  (+{(t - p) * 1e9:,.0f} ns; "
          f"{(t - p) / args.metrics * 1e9:,.0f} ns a metric, the background writer's share included)")
    print(f"  track.log over a pipe    {r * 1e9:8,.0f} ns  (+{(r - p) * 1e9:,.0f} ns: as under skyline-tui run, "
          "a Metrics event every 0.25 s)")
    import sqlite3

    with sqlite3.connect(os.environ["SKYLINE_TUI_HISTORY"]) as db:
        rows = db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    print(f"records in the store: {rows:,} (expected {1 + args.blocks * args.calls * args.metrics:,})")


if __name__ == "__main__":
    main()
