"""Training health (Ikkuna-style): a publisher hooked into a model sends per-layer activations, gradients,
weights and updates to metrics (built-in and the user's), which become series and flags.

The same publisher and the same judgement serve the profile's health phase (a fresh model, K iterations)
and the supervision of a live training run (the user's model, one step in N), in any process::

    from skyline_tui.profiler.health import Publisher, load_subscribers

    subscribers = load_subscribers(None, files)          # the installed packages' (optional)
    publisher = Publisher(model, files, subscribers=subscribers, window=50)
    publisher.attach()                                   # hooks on the model and on every optimizer's step
    ...
    publisher.start_iteration()                          # a sampled step begins: forward, backward,
    ...                                                  # optimizer.step() run as the script runs them
    values = publisher.end_iteration()                   # module -> metric -> float; one host sync
    if not publisher.finite: ...                         # a NaN/Inf in it (or in the loss)
    health = publisher.health()                          # the report's Health section, with flags
    publisher.detach()

- ``Publisher(model, files=None, wanted_kinds=(), *, subscribers=None, window=None, check_outside=True)``:
  ``files`` (a ``ProjectFiles``) names the project's code, for each layer's call site; ``wanted_kinds``
  are the tensors to hold for subscribers (``skyline_tui.health.KINDS``); ``window`` keeps the last N
  iterations only.  ``cancel_iteration()`` drops an iteration under way (it raised).  Outside a sampled
  iteration the hooks return at once.  ``publisher.optimizers`` are those seen stepping while attached:
  the flags are judged with them in view (their kind and each parameter group's learning rate).
- ``judge_health(layers, history, custom=(), subscriber_series=(), non_finite=None, errors=(), notes=())``
  is the one judgement (torch-free, plain data): ``Publisher.health()`` and the health phase call it;
  ``Publisher.layers()`` gives the ``LayerInfo`` rows (type, normalization or not, parameters, the
  ``OptimizerSetting`` stepping it) and ``Publisher.history`` / ``.custom`` the per-iteration values.
- ``measure_health(workload, config)``: the profile's phase.
"""

from skyline_tui.profiler.health.judgement import (
    BUILTIN_METRICS,
    IterationValues,
    LayerInfo,
    OptimizerSetting,
    judge_health,
)
from skyline_tui.profiler.health.phase import measure_health
from skyline_tui.profiler.health.publisher import Publisher
from skyline_tui.profiler.health.subscribers import SubscriberSet, load_subscribers

__all__ = ["BUILTIN_METRICS", "IterationValues", "LayerInfo", "OptimizerSetting", "Publisher", "SubscriberSet",
           "judge_health", "load_subscribers", "measure_health"]
