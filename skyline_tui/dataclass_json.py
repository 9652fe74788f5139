"""Frozen dataclasses to and from JSON-ready dicts, driven by their type hints: adding a field to the report
needs no code here.  Torch-free and textual-free, like the report it serves."""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from typing import Any


class ReportFormatError(ValueError):
    """A dict or JSON text does not follow the report schema."""


_T = typing.TypeVar("_T")


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_dict(value) for key, value in obj.items()}
    return obj


def from_dict(cls: type[_T], data: Any, where: str = "report") -> _T:
    if not isinstance(data, dict):
        raise ReportFormatError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(typing.cast(Any, cls)):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ReportFormatError(f"{where}: missing key {f.name!r}")
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def _hints(cls: type) -> dict[str, Any]:
    cached = _HINTS.get(cls)
    if cached is None:
        cached = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
        _HINTS[cls] = cached
    return cached


_HINTS: dict[type, dict[str, Any]] = {}


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ReportFormatError(f"{where}: must not be null")
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ReportFormatError(f"{where}: expected a list")
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(_convert(item_type, item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ReportFormatError(f"{where}: expected an object")
        (_key_type, value_type) = typing.get_args(tp)
        return {str(key): _convert(value_type, item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReportFormatError(f"{where}: expected a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReportFormatError(f"{where}: expected an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ReportFormatError(f"{where}: expected true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ReportFormatError(f"{where}: expected a string")
        return value
    if tp is Any:
        return value
    raise TypeError(f"{where}: unsupported type {tp!r}")  # a schema bug, not bad input
