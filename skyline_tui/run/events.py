"""The event stream of a supervised run: typed events, one JSON line each.

The script's process (the hooks) sends them to the launcher over a pipe of its own (never the script's stdout
or stderr, which stay the user's; its steps packed, several to a ``steps`` line: ``PACKED_STEP_FIELDS``); the
launcher unpacks them, adds its own (the script's output when it captures it, the
exit), writes them to ``--events PATH`` as they come and hands them to whoever watches (the headless progress
line, the summary, a live view).  One event per step, per sampled health, per log line and per exit, so a
view consumes the stream and needs nothing else.

Torch-free and textual-free: both sides import it.  Times are milliseconds, sizes bytes, ``None`` means "not
measured"; a loss that was not finite is ``None`` in ``losses`` and counted in ``non_finite_losses``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from array import array
from dataclasses import dataclass
from typing import Any, Optional, Union

from skyline_tui.dataclass_json import ReportFormatError, from_dict, to_dict
from skyline_tui.report import ErrorInfo, Health, NonFinite


@dataclass(frozen=True)
class ScriptStarted:
    """The child is up; its hooks go in before the script's first line."""

    pid: int
    script: str  # the path as given, or "-m MODULE"
    argv: tuple[str, ...]  # the script's sys.argv
    cwd: str


@dataclass(frozen=True)
class TorchSeen:
    """The script imported torch: the step hooks are installed from here on."""

    torch_version: str
    cuda: bool  # torch.cuda.is_available() as torch sees it without initialising the device


@dataclass(frozen=True)
class SamplesFrom:
    """Where a step's sample count comes from, said once: the leading ``dim`` of ``tensor`` (e.g.
    ``args[0]``) passed to ``module`` (the outermost module's class); or ``--samples-per-step``."""

    module: Optional[str]
    tensor: Optional[str]
    dim: Optional[int]
    override: Optional[int] = None


@dataclass(frozen=True)
class Step:
    """One training step, closed.  ``wall_ms`` runs from the previous step's end to this one's; the phases
    are exclusive (an LBFGS closure's forward and backward are not counted in its optimizer time) and
    ``other_ms`` is what is left (data loading, logging, a hand-written update)."""

    index: int  # 1-based
    end_s: float  # seconds since the child started
    wall_ms: float
    forward_ms: float
    backward_ms: float
    optimizer_ms: float
    evaluation_ms: float  # forward passes without gradient (evaluation) inside this step's time
    other_ms: float
    samples: Optional[int]
    losses: tuple[Optional[float], ...] = ()  # each scalar backward ran on, in order
    non_finite_losses: int = 0
    # Memory, sampled at a step end at most a few times a second (None in between): per-step reads of
    # the allocator's statistics would cost more than the step on a small model.
    allocated_bytes: Optional[int] = None
    reserved_bytes: Optional[int] = None
    peak_allocated_bytes: Optional[int] = None
    rss_bytes: Optional[int] = None
    health_sampled: bool = False  # per-layer health was sampled in this step (its time includes that)
    # The step's loss: the sum of the ``loss_terms`` losses its first update applied (``steps.py``: a GAN's
    # discriminator halves, accumulation's micro-losses, an LBFGS closure's first); None where one was not finite.
    loss: Optional[float] = None
    loss_terms: int = 0


@dataclass(frozen=True)
class HealthSampled:
    """One sampled step's per-layer values (``--health-every N``): module -> metric -> value (null where not
    finite), and the layers flagged so far (module -> flag kinds).  Small, so a long run's stream stays small;
    the judged section in the profile's shape comes as ``HealthJudged``."""

    step: int
    values: dict[str, dict[str, Optional[float]]]
    flagged: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class HealthJudged:
    """The per-layer health over the sampled steps kept, in the profile's shape: every ``JUDGE_EVERY``
    samples and at the end."""

    step: int
    health: Health


@dataclass(frozen=True)
class NonFiniteSeen:
    """The first NaN/Inf of the run: the step, and where it was made when that could be located."""

    step: int  # the step it appeared in (1-based)
    where: Optional[NonFinite]  # module and line, when found (a health-sampled step, or the loss)
    message: str


@dataclass(frozen=True)
class ScriptOutput:
    """A piece of the script's stdout or stderr, when the launcher captures them (a live view)."""

    stream: str  # "stdout" | "stderr"
    text: str


@dataclass(frozen=True)
class ChildFinished:
    """The child's last word, sent on the way out (not after ``os._exit`` or a kill)."""

    exit_code: int
    error: Optional[ErrorInfo]  # the exception that ended the script, at the user's line
    interrupted: bool  # a KeyboardInterrupt the script did not catch
    why_no_steps: Optional[str]  # when no step completed: what the hooks saw instead
    evaluation_passes: int
    evaluation_ms: float  # every forward pass without gradient, in steps and outside them
    backward_passes: int
    optimizer_steps: int
    peak_rss_bytes: Optional[int]
    peak_allocated_bytes: Optional[int]
    peak_reserved_bytes: Optional[int]


@dataclass(frozen=True)
class Metrics:
    """What the script logged with ``skyline_tui.track.log`` since the last batch, in order: record i is
    (``steps[i]``, ``names[i]``, ``values[i]``); a NaN or infinite value is ``None`` (JSON has none)."""

    steps: tuple[int, ...]
    names: tuple[str, ...]
    values: tuple[Optional[float], ...]


@dataclass(frozen=True)
class ScriptExited:
    """The launcher saw the child end: the final event of every run."""

    exit_code: int  # the script's status; negative: killed by that signal
    message: str  # one line: how it ended


Event = Union[ScriptStarted, TorchSeen, SamplesFrom, Step, HealthSampled, HealthJudged, NonFiniteSeen,
              ScriptOutput, ChildFinished, ScriptExited, Metrics]

_TYPES: dict[str, type] = {
    "started": ScriptStarted, "torch": TorchSeen, "samples_from": SamplesFrom, "step": Step,
    "health": HealthSampled, "health_judged": HealthJudged, "non_finite": NonFiniteSeen, "output": ScriptOutput,
    "finished": ChildFinished,
    "exited": ScriptExited, "metrics": Metrics,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}
_STEP_FIELDS = tuple(f.name for f in dataclasses.fields(Step))
_STEP_KEYS = set(_STEP_FIELDS)


def encode(event: Any) -> bytes:
    """One event as one newline-terminated JSON line."""
    if type(event) is Step:
        return step_line(*(getattr(event, name) for name in _STEP_FIELDS))
    payload = {"type": _NAMES[type(event)], **to_dict(event)}
    return (json.dumps(payload, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def _number(value: Any) -> str:
    return "null" if value is None else repr(value)


def step_line(index: int, end_s: float, wall_ms: float, forward_ms: float, backward_ms: float, optimizer_ms: float,
              evaluation_ms: float, other_ms: float, samples: Optional[int], losses: Any, non_finite_losses: int,
              allocated_bytes: Optional[int], reserved_bytes: Optional[int], peak_allocated_bytes: Optional[int],
              rss_bytes: Optional[int], health_sampled: bool, loss: Optional[float], loss_terms: int) -> bytes:
    """A ``Step`` event's line straight from its values (the launcher writes one per step to ``--events``): no
    dataclass, no dict, no reflection.  Times are finite floats; a loss that was not finite comes as None."""
    return (f'{{"type":"step","index":{index},"end_s":{end_s!r},"wall_ms":{wall_ms!r},"forward_ms":{forward_ms!r},'
            f'"backward_ms":{backward_ms!r},"optimizer_ms":{optimizer_ms!r},"evaluation_ms":{evaluation_ms!r},'
            f'"other_ms":{other_ms!r},"samples":{_number(samples)},"losses":[{",".join(map(_number, losses))}],'
            f'"non_finite_losses":{non_finite_losses},"allocated_bytes":{_number(allocated_bytes)},'
            f'"reserved_bytes":{_number(reserved_bytes)},"peak_allocated_bytes":{_number(peak_allocated_bytes)},'
            f'"rss_bytes":{_number(rss_bytes)},"health_sampled":{"true" if health_sampled else "false"},'
            f'"loss":{_number(loss)},"loss_terms":{loss_terms}}}\n').encode()


# Steps cross the pipe packed: the script's process packs each step's numbers as doubles (no formatting in the
# training loop) and sends them, base64, as one ``steps`` line at each flush; the launcher
# unpacks them into ``Step`` events.  A record: these fields in order (None as NaN: every value that is not
# finite is sent as None), then the losses' count and the losses.
PACKED_STEP_FIELDS = ("index", "end_s", "wall_ms", "forward_ms", "backward_ms", "optimizer_ms", "evaluation_ms",
                      "other_ms", "samples", "non_finite_losses", "allocated_bytes", "reserved_bytes",
                      "peak_allocated_bytes", "rss_bytes", "health_sampled", "loss", "loss_terms")
_INTS = frozenset({"index", "samples", "non_finite_losses", "allocated_bytes", "reserved_bytes",
                   "peak_allocated_bytes", "rss_bytes", "loss_terms"})
_NAN = float("nan")


def steps_line(packed: bytes) -> bytes:
    """One ``steps`` line from the packed records of several steps (native doubles: the pipe never leaves the
    machine)."""
    return b'{"type":"steps","packed":"' + base64.b64encode(packed) + b'"}\n'


def unpack_steps(payload: dict[str, Any]) -> list[Step]:
    values = array("d")
    values.frombytes(base64.b64decode(payload["packed"], validate=True))
    steps, at, fixed = [], 0, len(PACKED_STEP_FIELDS)
    while at < len(values):
        record = values[at:at + fixed]
        count = int(values[at + fixed])
        losses = tuple(None if math.isnan(v) else v for v in values[at + fixed + 1:at + fixed + 1 + count])
        at += fixed + 1 + count
        if len(record) < fixed or len(losses) < count:
            raise ValueError("a packed step record was cut short")
        fields: dict[str, Any] = {}
        for name, value in zip(PACKED_STEP_FIELDS, record):
            fields[name] = None if math.isnan(value) else int(value) if name in _INTS else value
        fields["health_sampled"] = bool(fields["health_sampled"])
        steps.append(Step(losses=losses, **fields))
    return steps


def none_as_nan(value: Optional[float]) -> float:
    return _NAN if value is None else value


def metrics_line(steps: list[int], names: list[str], values: list[Optional[float]]) -> bytes:
    """A ``Metrics`` event's line from plain lists (track.log's batches, up to a thousand records): the C JSON
    encoder over lists, no dataclass reflection per record."""
    return (json.dumps({"type": "metrics", "steps": steps, "names": names, "values": values},
                       separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def decode_all(line: Union[bytes, bytearray, str]) -> list[Event]:
    """The events of one line: one, or a ``steps`` line's several."""
    if line[:16] in (b'{"type":"steps",', '{"type":"steps",'):
        try:
            return list(unpack_steps(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ReportFormatError(f"malformed run event: {exc}") from None
    return [decode(line)]


def decode(line: Union[bytes, bytearray, str]) -> Event:
    try:
        payload = json.loads(line)
        cls = _TYPES[payload.pop("type")]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReportFormatError(f"malformed run event: {exc}") from None
    if cls is Step and payload.keys() == _STEP_KEYS:  # once a step: the checked path's reflection costs 90 us
        payload["losses"] = tuple(payload["losses"])
        return Step(**payload)
    event: Event = from_dict(cls, payload, where=cls.__name__)
    return event
