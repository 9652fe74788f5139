"""Save -> first updated number: how long after saving the entry point the new throughput is known.

For each sample (copied to a temporary folder, so the repository is never written), through the real
watcher (watchdog, debounce included) and the real worker:

- warm: one WorkerClient for every save, as the app keeps it (fork from the pre-imported zygote);
- cold: a fresh WorkerClient per save (a new interpreter importing torch each time);

each timed from the write to the first RunReport carrying throughput.  Beside them, the plain time of
what that number needs, timed in this process with torch imported: loading the entry point (import,
model, inputs) and the throughput phase (warm-up + measured iterations) with the same config.  The target
is save -> number <= 1.5 x plain + 0.5 s.  Ratios are measured in one run (the machine is noisy).
This stops at the number's arrival, without the app: ``save_to_screen.py`` times the same save through the app
to the frame that shows it, split step by step.

Usage: python benchmarks/save_latency.py [--saves N] [--cold-saves N] [--config app|json|quick|fixed] [SAMPLE ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_tui.config import ProfileConfig  # noqa: E402
from skyline_tui.tui.watch import DEFAULT_DEBOUNCE_S, ProjectWatcher  # noqa: E402
from skyline_tui.worker import protocol as p  # noqa: E402
from skyline_tui.worker.client import WorkerClient  # noqa: E402

SAMPLES = ("mlp", "convnet", "transformer", "lstm")
HAS_PREDICTIONS = importlib.util.find_spec("skyline_tui.profiler.predictions.scaling") is not None


CONFIGS = {
    "app": ProfileConfig.interactive,  # what `skyline-tui ENTRY` asks for
    "json": ProfileConfig,  # the headless defaults: a longer warm-up and throughput budget
    "quick": ProfileConfig.quick,  # the tests' tiny budgets
    # A fixed amount of work (2 warm-up + 2 rounds of 3 iterations, no stability search): the ratio is
    # then all overhead (debounce, fork, import, first-use costs), free of the search's run-to-run spread.
    "fixed": lambda: ProfileConfig.interactive(warmup_s=0.0, throughput_budget_s=0.0),
}


def app_config(name: str) -> ProfileConfig:
    base = CONFIGS[name]()
    return base.replace(predictions=base.predictions and HAS_PREDICTIONS)


class FirstNumber:
    """Worker events in; the time the first report with throughput arrives after each save, out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed_at: float | None = None
        self._runs_done: set[tuple[int, int]] = set()
        self.arrived = threading.Event()
        self.latency: float | None = None
        self.error: str | None = None

    def arm(self) -> float:
        with self._lock:
            self.arrived.clear()
            self.latency = self.error = None
            self._armed_at = time.perf_counter()
            return self._armed_at

    def listener(self, client_number: int):
        """The on_event for one client (run ids restart at 1 with every new client)."""
        return lambda event: self._on_event(client_number, event)

    def _on_event(self, client_number: int, event: p.Event) -> None:
        if not isinstance(event, p.RunReport) or (client_number, event.run_id) in self._runs_done:
            return
        error = event.report.error
        if error is not None and error.kind == "cancelled":
            return  # a run we stopped (it may carry the throughput already counted)
        now = time.perf_counter()
        with self._lock:
            if self._armed_at is None:
                return
            if event.report.throughput is not None or (event.final and error is not None):
                self._runs_done.add((client_number, event.run_id))
                self.latency = now - self._armed_at
                self.error = error.message if error is not None and event.report.throughput is None else None
                self._armed_at = None
                self.arrived.set()


def plain_time(entry: Path, config: ProfileConfig, repeats: int = 3) -> tuple[float, float, int]:
    """In-process: (load s, throughput phase s, iterations timed), medians over ``repeats``."""
    import torch  # noqa: F401 - imported before timing, as the zygote has it

    from skyline_tui.profiler.entry import load_entry_point
    from skyline_tui.profiler.run import load_workload, measure_throughput

    loads, phases, iterations = [], [], []
    for _ in range(repeats):
        for name in [m for m in sys.modules if m in ("model", "__skyline_entry__")]:
            del sys.modules[name]  # a fresh import each time, as a forked run child does
        began = time.perf_counter()
        ep = load_entry_point(str(entry), None)
        work = load_workload(ep, config.batch_size or ep.default_batch_size)
        loaded = time.perf_counter()
        throughput = measure_throughput(work, config)
        phases.append(time.perf_counter() - loaded)
        loads.append(loaded - began)
        iterations.append(throughput.iterations_measured)
    return statistics.median(loads), statistics.median(phases), int(statistics.median(iterations))


def save(entry: Path, counter: int) -> None:
    text = entry.read_text()
    marker = "# skyline-bench save "
    lines = [line for line in text.splitlines() if not line.startswith(marker)]
    entry.write_text("\n".join(lines) + f"\n{marker}{counter}\n")


def measure_saves(entry: Path, config: ProfileConfig, saves: int, cold: bool, timeout: float = 120.0) -> list[float]:
    first = FirstNumber()
    clients: list[WorkerClient] = []

    def on_change(paths: list[str]) -> None:
        if cold:
            for client in clients:
                client.close()
            clients.clear()
            clients.append(WorkerClient(first.listener(next(numbers))))
        clients[-1].submit(str(entry), None, config)

    numbers = itertools.count()
    if not cold:
        clients.append(WorkerClient(first.listener(next(numbers))))
        clients[0].start()
        first.arm()
        clients[0].submit(str(entry), None, config)  # the app's profile at start: the worker is warm after
        first.arrived.wait(timeout)
    watcher = ProjectWatcher(str(entry.parent), on_change, debounce_s=DEFAULT_DEBOUNCE_S)
    watcher.start()
    latencies = []
    try:
        for i in range(saves):
            first.arm()
            save(entry, i)
            if not first.arrived.wait(timeout):
                raise RuntimeError(f"no number within {timeout} s of save {i}")
            if first.error:
                raise RuntimeError(first.error)
            latencies.append(first.latency or 0.0)
            for client in clients:
                client.cancel()  # the rest of the run (breakdown...) must not load the next save's machine
            time.sleep(0.3)
    finally:
        watcher.stop()
        for client in clients:
            client.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", nargs="*", default=list(SAMPLES))
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--cold-saves", type=int, default=2)
    parser.add_argument("--config", choices=tuple(CONFIGS), default="app")
    args = parser.parse_args()
    config = app_config(args.config)
    print(f"config {args.config}: warm-up {config.warmup_iterations} it/{config.warmup_s:g} s, rounds of "
          f"{config.round_iterations}, min {config.min_rounds} rounds, budget {config.throughput_budget_s:g} s; "
          f"debounce {DEFAULT_DEBOUNCE_S:g} s; medians over {args.saves} warm / {args.cold_saves} cold saves")
    header = (f"{'sample':<12}{'load':>7}{'iters':>7}{'plain':>7}{'target':>8}{'warm':>8}{'w/plain':>9}"
              f"{'w ok':>6}{'cold':>8}{'c/plain':>9}")
    print(header)
    print("-" * len(header))
    for sample in args.samples:
        with tempfile.TemporaryDirectory(prefix=f"skyline-bench-{sample}-") as folder:
            project = Path(folder) / sample
            shutil.copytree(REPO / "samples" / sample, project)
            entry = project / "entry.py"
            load_s, phase_s, iterations = plain_time(entry, config)
            plain = load_s + phase_s
            target = 1.5 * plain + 0.5
            warm = statistics.median(measure_saves(entry, config, args.saves, cold=False))
            cold = statistics.median(measure_saves(entry, config, args.cold_saves, cold=True)) \
                if args.cold_saves else float("nan")
            print(f"{sample:<12}{load_s:>6.2f}s{iterations:>7}{plain:>6.2f}s{target:>7.2f}s{warm:>7.2f}s"
                  f"{warm / plain:>8.2f}x{'yes' if warm <= target else 'NO':>6}{cold:>7.2f}s{cold / plain:>8.2f}x",
                  flush=True)
    print("plain = load + throughput phase in-process (warm-up + measured iterations); target = 1.5 x plain + 0.5 s")


if __name__ == "__main__":
    main()
