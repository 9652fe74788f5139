"""What a profile run is asked to do, and how long it may take.

Budgets are configurable so tests profile tiny models in a fraction of a second and a GPU user can ask
for more samples.  The config crosses the worker boundary as JSON, so it stays a flat frozen dataclass.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional


INTERACTIVE_WARMUP_S = 0.1
INTERACTIVE_THROUGHPUT_BUDGET_S = 1.0
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ProfileConfig:
    batch_size: Optional[int] = None  # None: the input provider's default
    timeout_s: float = 300.0  # the whole run (load + every phase); then the worker is killed

    # Throughput: warm up, then time rounds of iterations until two consecutive round means agree
    # within stability_tolerance, or the budget is spent.
    warmup_iterations: int = 2
    # Keep warming up (past warmup_iterations) until this much time has passed.  Through the real worker
    # (forked child per run), 0.1 s and 0.3 s gave the same headline on every sample (6 alternating runs
    # each; medians within the run-to-run spread), 0.0 s read convnet 6 % slower: 0.1 s.
    warmup_s: float = 0.1
    round_iterations: int = 3
    min_rounds: int = 2
    stability_tolerance: float = 0.05
    throughput_budget_s: float = 3.0
    # Also report the throughput as soon as the first round is in, unsettled (the app: a save shows its first
    # number sooner; the settled one follows).
    provisional_throughput: bool = False

    breakdown: bool = True
    breakdown_iterations: int = 3  # instrumented iterations averaged for the breakdown
    # Instrumented warm-up before those: at least one iteration, and until this much time has passed.  A
    # run child is forked from the warm worker, and its first passes through the instruments' Python code
    # pay for copy-on-write page faults (the mlp sample's profiled iteration fell from 3.9 to 2.5 ms over
    # its first ~20 instrumented iterations in a forked child; over 5 alternating runs the overhead was
    # 1.19x after 0.3 s of warm-up, 1.26x after 0.1 s and 1.66x after none).
    breakdown_warmup_s: float = 0.2

    memory: bool = True

    # Training health: this many iterations from a fresh model (the providers called again), fewer if
    # the budget runs out first.
    health: bool = True
    health_iterations: int = 20
    health_budget_s: float = 5.0

    predictions: bool = True
    predictions_budget_s: float = 8.0
    min_prediction_points: int = 3
    # The drift between processes of identical code on this machine (the relative standard deviation of one
    # run's time, skyline_tui.comparison.drift), as the history store learned it for this entry point on the
    # CPU named ``drift_device``; a front door that reads the store fills both (skyline_tui.history.lookup.
    # with_learned_drift).  The predictions judge the batch sizes measured each in a process of its own
    # against it, on that CPU only; None: unknown (nothing learned, no store, another machine).  How to
    # judge, not how the code runs: the drift's learning ignores it when it groups runs of one config.
    drift_sigma: Optional[float] = None
    drift_device: Optional[str] = None

    # Where the run child writes one profiled iteration as a Chrome trace (an absolute path), or None.
    trace_path: Optional[str] = None

    # Knobs (a sweep sets them; the default is the entry point as written).  ``knobs`` are provider keyword
    # arguments by name, each passed to every provider that declares it; the rest are built in.
    knobs: Optional[dict[str, Any]] = None
    precision: str = "fp32"  # fp32 | bf16 | fp16: bf16/fp16 run the iteration under torch.autocast
    channels_last: bool = False  # the model and 4-D inputs in the channels-last memory format
    compile: bool = False  # torch.compile the model; the compile time is reported apart (Report.compile_ms)

    def drift_sigma_on(self, device: Optional[str]) -> Optional[float]:
        """``drift_sigma`` for a run on the device named ``device`` (``DeviceInfo.name``): None elsewhere."""
        return self.drift_sigma if device is not None and device == self.drift_device else None

    def replace(self, **changes: Any) -> "ProfileConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProfileConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown profile options: {', '.join(sorted(unknown))}")
        config = cls(**data)
        if config.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (it is {config.precision!r})")
        if config.drift_sigma is not None and not 0.0 <= config.drift_sigma < math.inf:
            raise ValueError(f"drift_sigma must be a finite number >= 0 or null (it is {config.drift_sigma!r})")
        return config

    @classmethod
    def interactive(cls, **changes: Any) -> "ProfileConfig":
        """The app's budgets: the first number soon after a save.  A save re-profiles, so a steadier
        number matters less than a prompt one; the headless ``--json`` run keeps the longer defaults."""
        return cls(warmup_s=INTERACTIVE_WARMUP_S, throughput_budget_s=INTERACTIVE_THROUGHPUT_BUDGET_S,
                   provisional_throughput=True).replace(**changes)

    @classmethod
    def quick(cls, **changes: Any) -> "ProfileConfig":
        """Tiny budgets for tests: a run of a small model takes well under a second per phase."""
        base = cls(
            warmup_iterations=1,
            warmup_s=0.0,
            round_iterations=2,
            min_rounds=2,
            throughput_budget_s=0.5,
            breakdown_iterations=1,
            breakdown_warmup_s=0.0,
            health_iterations=5,
            health_budget_s=2.0,
            predictions_budget_s=2.0,
            timeout_s=60.0,
        )
        return base.replace(**changes)
