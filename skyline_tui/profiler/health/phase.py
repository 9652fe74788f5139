"""The health phase: K training iterations from a fresh model, per-layer signals, flags.

The publisher and the judgement are the ones a live run uses (``Publisher``, ``judge_health``); this
module adds what only a profile has: a fresh model from the entry's providers, a budget (stretched up to
3x while fewer iterations than a median-based flag needs have run), and the replay that locates a NaN.

The entry's providers are called again (a new model, its optimizer, new inputs) under a fixed seed, as
training would begin, so the numbers depend neither on how many iterations the timing phases ran nor on
the run: the same seed rebuilds the same model to replay an iteration that went non-finite.  The seed is
set inside ``torch.random.fork_rng``, so the phases after this one draw the random numbers they would
have drawn without it; the hooks sit on the fresh model only and are removed on the way out.

The fresh model, its optimizer state and activations sit beside the profiled workload's, so on a big
model the phase can run out of memory where the timing phases did not: the caches are emptied first,
and an out-of-memory error becomes an entry of the health section's ``errors`` (the phases after this
one still run), not the report's error.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from typing import Iterator, Optional

import torch

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.predictions.capacity import is_oom_error, release_after_oom
from skyline_tui.profiler.errors import ProfileError, from_exception
from skyline_tui.profiler.health.flags import MIN_ITERATIONS
from skyline_tui.profiler.health.nonfinite import locate
from skyline_tui.profiler.health.publisher import Publisher
from skyline_tui.profiler.health.subscribers import SubscriberSet, load_subscribers
from skyline_tui.profiler.workload import Workload, load_workload
from skyline_tui.report import Health, HealthError, NonFinite, Report

HEALTH_SEED = 0
BUDGET_STRETCH = 3.0


@contextmanager
def seeded(device: torch.device) -> Iterator[None]:
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(HEALTH_SEED)
        yield


NO_HOOKS = "a TorchScript model (torch.jit.script) takes no module hooks, which per-layer health needs: it was skipped"


def measure_health(work: Workload, config: ProfileConfig, report: Optional[Report] = None) -> Health:
    subscribers = work.run_user(lambda: load_subscribers(work.entry.module, work.entry.files),
                                "skyline_health_subscribers")
    _release(work.device)  # what the earlier phases left cached, before a second model is built
    fresh: list[Workload] = []  # a list, so the finally can drop the model
    try:
        with seeded(work.device):
            # The same knobs as the profiled workload (a sweep's trial); never recompiled: hooks need the module.
            fresh.append(load_workload(work.entry, work.batch_size, config.replace(compile=False)))
            if isinstance(fresh[0].model, torch.jit.ScriptModule):  # it raises on every hook: not the user's error
                return Health(iterations=0, modules=(), errors=(HealthError(subscriber="", message=NO_HOOKS),))
            health: Health = work.run_user(lambda: _run(fresh[0], config, subscribers), "iteration")
            return health
    except Exception as exc:  # noqa: BLE001 - only an out-of-memory error is handled here
        if not is_oom_error(exc):
            raise
        where = "building the fresh model" if not fresh else "running its iterations"
        info = exc.info if isinstance(exc, ProfileError) else from_exception(exc, work.entry.files)
        release_after_oom(exc, work.device)
        return Health(iterations=0, modules=(), errors=(HealthError(
            subscriber="", file=info.file, line=info.line,
            message=f"{info.message} ({where} beside the profiled one; the health phase was skipped: "
                    "--no-health, or a smaller batch)"),))
    finally:
        fresh.clear()
        _release(work.device)


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _run(fresh: Workload, config: ProfileConfig, subscribers: SubscriberSet) -> Health:
    publisher = Publisher(fresh.model, fresh.entry.files, subscribers=subscribers)
    start = time.perf_counter()
    non_finite_at: Optional[int] = None
    with publisher:
        for i in range(max(1, config.health_iterations)):
            if i > 0 and _out_of_time(time.perf_counter() - start, i, config.health_budget_s):
                break
            publisher.start_iteration()
            publisher.run(fresh.run)
            publisher.end_iteration()
            if not publisher.finite:
                non_finite_at = i  # what follows a NaN is NaN: stop here, and find where it came from
                break
    non_finite = _locate(fresh, non_finite_at, config) if non_finite_at is not None else None
    return publisher.health(non_finite=non_finite)


def _out_of_time(elapsed: float, done: int, budget: float) -> bool:
    """The budget is stretched, up to BUDGET_STRETCH times, while fewer iterations than a median-based
    flag needs have run: a big model's few slow iterations would otherwise say little."""
    if done < MIN_ITERATIONS:
        return elapsed > budget * BUDGET_STRETCH
    return elapsed > budget


def _locate(fresh: Workload, iteration: int, config: ProfileConfig) -> NonFinite:
    """Rebuild from the same seed, run up to ``iteration`` plainly, then that one under the checks."""
    with seeded(fresh.device):
        replay = load_workload(fresh.entry, fresh.batch_size, config.replace(compile=False))
        for _ in range(iteration):
            replay.run()
        found = locate(replay.model, replay.run, fresh.entry.files, iteration)
    if found is not None:
        return found
    return NonFinite(module=None, phase="forward", file=None, line=None, iteration=iteration,
                     message="a NaN/Inf appeared, but not again when the iteration was replayed "
                             "(non-deterministic code?)")
