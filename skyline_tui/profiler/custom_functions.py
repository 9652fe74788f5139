"""The ``torch.autograd.Function.apply`` wrapper of the line attribution (``attribution``), apart from it.

A custom Function is not a torch call, so the torch-function mode never sees ``apply`` itself; while the
mode is active, ``Function.apply`` (a classmethod every custom Function inherits) is replaced by one that
hands each call to the mode, which times it and tags the node it creates.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional, Protocol

import torch


class AppliesCustomFunctions(Protocol):
    def apply_custom_function(self, apply: Callable[..., Any], klass: Any, args: Any, kwargs: Any,
                              caller: Any) -> Any: ...


class CustomFunctions:
    """Wraps ``torch.autograd.Function.apply`` while a ``LineAttributionMode`` is active: every apply then
    goes through the mode's ``apply_custom_function``."""

    _mode: Optional[AppliesCustomFunctions] = None
    # Function.__dict__["apply"] while installed.  In a list: a classmethod kept as a class attribute
    # here would be bound to this class on every read.
    _original: list[Any] = []

    @classmethod
    def install(cls, mode: AppliesCustomFunctions) -> None:
        cls._mode = mode
        if cls._original:
            return
        function = torch.autograd.Function
        original = function.__dict__.get("apply")
        if not isinstance(original, classmethod):
            return  # an unknown torch layout: custom Functions stay unattributed rather than break
        apply = original.__func__

        def timing_apply(klass: Any, *args: Any, **kwargs: Any) -> Any:
            mode = cls._mode
            if mode is None:
                return apply(klass, *args, **kwargs)
            return mode.apply_custom_function(apply, klass, args, kwargs, sys._getframe(1))

        cls._original.append(original)
        function.apply = classmethod(timing_apply)  # type: ignore[method-assign, assignment]

    @classmethod
    def uninstall(cls) -> None:
        if cls._original:
            torch.autograd.Function.apply = cls._original.pop()  # type: ignore[method-assign]
        cls._mode = None
