"""What a step is, from what the hooks see: torch-free bookkeeping of phases and step boundaries.

The hooks (hooks.py) call ``enter``/``leave`` around each outermost forward, each backward and each optimizer
step, and ``optimizer_stepped`` after a step; this class turns that into closed steps:

- **Optimizers** (any ``torch.optim`` optimizer exists): a step is one *round* in which every known optimizer
  has stepped, closed at the end of the round's last optimizer step.  Known: the optimizers alive (built
  before the loop, as a GAN builds two).  An optimizer that steps again before the round is complete (a
  critic stepping five times per generator step) leaves a *tentative* boundary; when the round completes,
  those segments are one step.  Where the round never completes (an optimizer built and never used, one
  replaced each epoch) the tentative boundaries become steps after ``TENTATIVE_LIMIT`` of them, and the
  optimizers that did not step are no longer waited for.  LBFGS's ``step(closure)`` is one step however
  many backward passes the closure runs.
- **No optimizer** (updates by hand): a step is a backward pass and what follows it, closed when the next
  training activity begins (an outermost forward with gradients, or a backward).

Time is exclusive: a phase entered inside another (an LBFGS closure's forward inside ``step``) pauses the
outer one.  Forward passes without gradient are evaluation, their own phase.  ``other`` is the step's wall
time left over.

The step's loss: the scalars ``.backward()`` ran on (whose gradients accumulate into ``.grad``; not
``torch.autograd.grad``'s, a WGAN-GP's penalty) from the step's start until the first update: a gradient zeroing
after them (SAM's ``first_step``) or the first optimizer step, summed (gradient accumulation's micro-losses, a GAN
discriminator's real and fake halves), plus the first backward inside that step (an LBFGS closure's; Lightning runs
its last micro-batch in one).  By hand, every backward of the step.  Every loss stays in ``losses``.

Samples: the batch of the step's first training forward; with several forward-and-backward passes before one
optimizer steps (gradient accumulation, nanoGPT's micro-steps), the sum of their batches (a forward's counts once
its own backward comes: not a second forward into one loss, not an LBFGS closure's, not with several optimizers).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

FORWARD, BACKWARD, OPTIMIZER, EVALUATION = "forward", "backward", "optimizer", "evaluation"
PHASES = (FORWARD, BACKWARD, OPTIMIZER, EVALUATION)
TENTATIVE_LIMIT = 64


@dataclass
class Segment:
    """What happened since the last boundary: a step once closed (several, for a round with repeats)."""

    start: float
    end: float = 0.0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    samples: Optional[int] = None  # the first training forward's batch
    accumulated: int = 0  # the batches of the forwards each followed by a backward of their own (accumulation)
    losses: list[Any] = field(default_factory=list)  # whatever the hooks pass: a float, or a pending read
    # The step's loss (``loss_terms``): the losses before ``applied_end`` (once known) and the first backward's
    # inside the first optimizer step (``awaiting`` it; a closure's), less those of ``autograd.grad`` (their indices;
    # None where there are none, as almost always).
    applied_end: Optional[int] = None
    inside: Optional[int] = None
    awaiting: bool = False
    grads: Optional[list[int]] = None
    health: bool = False  # the hooks sampled per-layer health in it

    def absorb(self, later: "Segment") -> None:
        self.end = later.end
        for phase, seconds in later.seconds.items():
            self.seconds[phase] += seconds
        if self.samples is None:
            self.samples = later.samples
        self.accumulated += later.accumulated
        n = len(self.losses)
        if self.applied_end is None and later.applied_end is not None:
            self.applied_end = n + later.applied_end
            self.inside = None if later.inside is None else n + later.inside
        if later.grads is not None:
            self.grads = (self.grads or []) + [n + i for i in later.grads]
        self.losses += later.losses

    def loss_terms(self) -> Sequence[int]:
        """The indices of the losses that make the step's loss (the module docstring): by hand, each backward's;
        with none from ``.backward()``, the first loss."""
        n = len(self.losses)
        end = n if self.applied_end is None else self.applied_end
        terms: Sequence[int] = range(end) if self.grads is None else [i for i in range(end) if i not in self.grads]
        if self.inside is not None:
            terms = [*terms, self.inside]
        if not terms and n:
            terms = [i for i in range(n) if i not in (self.grads or ())] or [0]
        return terms


ClosedStep = Callable[[Segment], None]


class StepEngine:
    def __init__(self, on_step: ClosedStep, clock: Callable[[], float] = time.perf_counter):
        self._on_step = on_step
        self._clock = clock
        self._stack: list[str] = []
        self._mark = 0.0
        self._segment: Optional[Segment] = None  # None until the first training activity
        self._outside = dict.fromkeys(PHASES, 0.0)  # time in phases before training began or after it ended
        # Optimizer rounds: ids of the optimizers waited for, those that stepped in the open round, and those
        # that ever stepped.
        self.alive: set[int] = set()
        self._round: set[int] = set()
        self._ever: set[int] = set()
        self._dropped: set[int] = set()
        self._tentative: list[Segment] = []
        self._last_leave = 0.0
        self._last_end: Optional[tuple[float, dict[str, float], int, Optional[int]]] = None
        self._samples_after_end: Optional[int] = None
        self._backward_in_segment = False
        self._had_optimizer = False  # once an optimizer was built or stepped, steps are rounds (even once it is freed)
        self._parameters: dict[int, frozenset[int]] = {}
        self._micro: Optional[int] = None  # the batch of the first training forward since the last backward
        self.steps = 0
        self.backward_passes = 0
        self.optimizer_steps = 0
        self.evaluation_passes = 0
        self.training_forwards = 0
        self.evaluation_seconds = 0.0  # in steps and outside them

    # --- what the hooks report ---------------------------------------------------------------------

    def optimizer_built(self, key: int, parameters: frozenset[int] = frozenset()) -> None:
        """``parameters``: the ids of the tensors it updates, when known."""
        self.alive.add(key)
        self._had_optimizer = True
        self._parameters[key] = parameters

    def optimizer_gone(self, key: int) -> None:
        """An optimizer was freed (a fresh one per fold replaced it): no round waits for it.  A finalizer, which may
        run anywhere: nothing closes here; the next step of another optimizer does."""
        self.alive.discard(key)
        self._ever.discard(key)
        self._round.discard(key)
        self._parameters.pop(key, None)

    def enter(self, phase: str) -> None:
        now = self._clock()
        if phase in (FORWARD, BACKWARD) and not self._stack:
            self._training_begins(now)
        elif phase == OPTIMIZER and self._segment is None:
            self._training_begins(now)  # an LBFGS step runs its first forward inside step()
        self._charge(now)
        self._stack.append(phase)
        if phase == EVALUATION:
            self.evaluation_passes += 1
        elif phase == FORWARD:
            self.training_forwards += 1
        elif phase == BACKWARD:
            self.backward_passes += 1
            self._backward_in_segment = True
            if self._micro is not None and self._segment is not None and OPTIMIZER not in self._stack:
                self._segment.accumulated += self._micro  # not an LBFGS closure's: those re-use one batch
            self._micro = None
        elif phase == OPTIMIZER:
            self.optimizer_steps += 1
            segment = self._segment
            if segment is not None and segment.applied_end is None:
                segment.applied_end, segment.awaiting = len(segment.losses), True

    def leave(self, phase: str) -> None:
        now = self._clock()
        self._charge(now)
        self._last_leave = now
        # Pop down to the phase left: a hook that never ran its ``leave`` (an exception) must not pin the stack.
        while self._stack:
            if self._stack.pop() == phase:
                break
        if phase == OPTIMIZER and self._segment is not None:
            self._segment.awaiting = False

    def optimizer_stepping(self, key: int) -> None:
        """Before an optimizer's step: a second step of one optimizer in an incomplete round."""
        if key in self._round and self._segment is not None:
            self._charge(self._clock())
            self._tentative.append(self._cut_at_last_optimizer_end())
            self._round = set()
            if len(self._tentative) > TENTATIVE_LIMIT:
                # The round does not complete: stop waiting for the optimizers that did not step.
                missing = self._waited_for() - {key}
                self._dropped |= missing
                for segment in self._tentative:
                    self._emit(segment)
                self._tentative = []

    def optimizer_stepped(self, key: int) -> None:
        now = self._clock()
        self._had_optimizer = True
        self._ever.add(key)
        self._dropped.discard(key)
        self._round.add(key)
        mine = self._parameters.get(key)
        if mine and not self.alive <= self._ever:  # one that never stepped, over no parameter this one does not
            # update, is a wrapper (SAM's)
            self._dropped |= {k for k in self.alive - self._ever
                              if self._parameters.get(k) and self._parameters[k] <= mine}
        if not self._close_round_if_complete(now) and self._segment is not None:
            # Where a tentative boundary would go (the round is open: this optimizer may step again first).
            self._last_end = (now, dict(self._segment.seconds), len(self._segment.losses), self._segment.samples)
            self._samples_after_end = None

    def note_samples(self, samples: int, repeat: bool = False) -> None:
        """``repeat``: the batch is the one the last forward had (a second pass over it, not accumulation)."""
        if self._segment is not None and self._segment.samples is None:
            self._segment.samples = samples
        elif self._last_end is not None and self._samples_after_end is None:
            self._samples_after_end = samples  # the batch of the part a tentative boundary would cut off
        if self._micro is None:
            self._micro = 0 if repeat else samples

    def wants_samples(self) -> bool:
        return self._micro is None

    def note_loss(self, loss: Any, applied: bool = True) -> None:
        """``applied``: ``.backward()`` ran on it (its gradients go to ``.grad``), not ``autograd.grad``."""
        segment = self._segment
        if segment is not None:
            if not applied:
                segment.grads = (segment.grads or []) + [len(segment.losses)]
            elif segment.awaiting and OPTIMIZER in self._stack:
                segment.inside, segment.awaiting = len(segment.losses), False
            segment.losses.append(loss)

    def grads_zeroed(self) -> None:
        """``zero_grad()`` of an optimizer or a module: after a backward, the step's loss is what came before."""
        segment = self._segment
        if segment is not None and segment.applied_end is None and len(segment.losses) > len(segment.grads or ()):
            segment.applied_end = len(segment.losses)

    def finish(self) -> None:
        """The script ended: tentative segments are steps; the open one is not (its step did not complete), unless
        it waits only for optimizers that never stepped."""
        now = self._clock()
        self._charge(now)
        if self._optimizers_in_use():
            if (self._round and self._segment is not None and self._last_end is not None
                    and not (self._waited_for() - self._round) & self._ever):
                # An open round that waits only for optimizers that never stepped (a wrapper whose base optimizer
                # steps, as SAM's does) is a step; one that waits for a GAN's generator is not.
                self._tentative.append(self._cut_at_last_optimizer_end())
            for segment in self._tentative:
                self._emit(segment)
            self._tentative = []
        elif self._segment is not None and self._backward_in_segment:
            # By hand, the last step's update comes after its backward with no hook to see it end: the step
            # ends with its last phase rather than with the script (which may save, evaluate, print for long).
            self._segment.end = self._last_leave
            self._emit(self._segment)
        self._segment = None

    # --- bookkeeping -------------------------------------------------------------------------------

    @property
    def phase(self) -> Optional[str]:
        return self._stack[-1] if self._stack else None

    @property
    def by_hand(self) -> bool:
        """No optimizer: the script updates the parameters itself."""
        return not self._optimizers_in_use()

    def _optimizers_in_use(self) -> bool:
        return self._had_optimizer

    def _waited_for(self) -> set[int]:
        return (self.alive | self._ever) - self._dropped

    def _training_begins(self, now: float) -> None:
        if self._segment is None:
            self._segment = Segment(start=now)
            self._mark = now
        elif not self._optimizers_in_use() and self._backward_in_segment:
            # By hand: the next forward or backward after a backward begins the next step.
            self._charge(now)
            self._segment.end = now
            self._emit(self._segment)
            self._segment = Segment(start=now)
            self._backward_in_segment = False

    def _charge(self, now: float) -> None:
        if self._stack:
            into = self._segment.seconds if self._segment is not None else self._outside
            phase = self._stack[-1]
            into[phase] += now - self._mark
            if phase == EVALUATION:
                self.evaluation_seconds += now - self._mark
        self._mark = now

    def _close_round_if_complete(self, now: float) -> bool:
        if self._segment is None or not self._round or not self._waited_for() <= self._round:
            return False
        step = self._cut(now)
        for earlier in reversed(self._tentative):
            earlier.absorb(step)
            step = earlier
        self._tentative = []
        self._round = set()
        self._emit(step)
        return True

    def _cut_at_last_optimizer_end(self) -> Segment:
        """End the open segment where its last optimizer step ended; what came after moves to the next."""
        assert self._segment is not None and self._last_end is not None
        at, seconds, losses, samples = self._last_end
        after = self._segment
        closing = Segment(start=after.start, end=at, seconds=seconds, samples=samples, losses=after.losses[:losses],
                          applied_end=None if after.applied_end is None else min(after.applied_end, losses),
                          inside=after.inside if after.inside is not None and after.inside < losses else None,
                          grads=None if after.grads is None else [i for i in after.grads if i < losses] or None)
        self._segment = Segment(start=at, seconds={k: v - seconds[k] for k, v in after.seconds.items()},
                                samples=after.samples if samples is None else self._samples_after_end,
                                losses=after.losses[losses:],
                                grads=None if after.grads is None else [i - losses for i in after.grads if i >= losses]
                                or None)
        self._backward_in_segment = bool(self._segment.seconds[BACKWARD])
        return closing

    def _cut(self, at: float) -> Segment:
        """End the open segment at ``at`` and open the next one there (time after ``at`` moves along)."""
        assert self._segment is not None
        closing = self._segment
        closing.end = at
        self._segment = Segment(start=at)
        self._backward_in_segment = False
        return closing

    def _emit(self, segment: Segment) -> None:
        if segment.accumulated > (segment.samples or 0) and len(self._waited_for()) <= 1:
            # Gradient accumulation (several forward and backward passes before one optimizer's step, or by hand):
            # the step trained on every micro-batch.  Not with several optimizers: a GAN's passes share a batch.
            segment.samples = segment.accumulated
        self.steps += 1
        self._on_step(segment)
