"""Writing a health metric once, for any model (Ikkuna's subscribers).

A subscriber names the per-module messages it needs and turns them into one number per module and
iteration::

    from skyline_tui.health import Subscriber

    class GradToWeight(Subscriber):
        name = "grad_to_weight"
        kinds = ("weight_gradients", "weights")

        def compute(self, module_name, module, data):
            return float(data["weight_gradients"].norm() / data["weights"].norm())

    def skyline_health_subscribers():  # in the entry point
        return [GradToWeight()]

Installed packages offer subscribers through the entry-point group ``skyline_tui.health`` (a Subscriber
subclass, an instance, or a callable returning a list of instances).  This module does not import torch:
the report and config modules, and the UI process, may import it.
"""

from __future__ import annotations

from typing import Any, Optional

# The messages the publisher sends for every module it watches, in the order of an iteration.
#   activations       the module's output (the first tensor of a tuple output)
#   layer_gradients   the gradient of the loss w.r.t. that output
#   weights           the module's own trainable parameters before the optimizer step, flattened into one
#   weight_gradients  their gradients, flattened the same way (zeros where a parameter got none)
#   weight_updates    the parameters after the optimizer step minus before, flattened the same way
KINDS = ("activations", "layer_gradients", "weights", "weight_gradients", "weight_updates")

ENTRY_POINT_GROUP = "skyline_tui.health"
ENTRY_HOOK = "skyline_health_subscribers"


class Subscriber:
    """A health metric: ``compute`` is called once per module and iteration with ``data``, the module's
    tensors of this iteration by kind (only the ``kinds`` asked for; a module lacking one is skipped).
    Return a float, or None for "no value this time".  An exception is reported, not propagated."""

    name: str = ""
    kinds: tuple[str, ...] = ()

    def compute(self, module_name: str, module: Any, data: dict[str, Any]) -> Optional[float]:
        raise NotImplementedError


__all__ = ["ENTRY_HOOK", "ENTRY_POINT_GROUP", "KINDS", "Subscriber"]
