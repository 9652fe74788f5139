"""The published JSON Schema of the report, derived from the dataclasses so the two cannot drift.

``python -m skyline_tui.schema`` prints it; ``skyline_tui/report.schema.json`` is the committed copy (a test
checks that it equals the generated one, and validates real reports against it).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from skyline_tui import report as r

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
_PRIMITIVES = {str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"}, bool: {"type": "boolean"},
               Any: {}}


def json_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    root = _object_schema(r.Report, defs)
    root["properties"]["schema_version"] = {"const": r.SCHEMA_VERSION}
    root["properties"]["error"] = {"anyOf": [{"$ref": "#/$defs/ErrorInfo"}, {"type": "null"}]}
    defs["ErrorInfo"]["properties"]["kind"] = {"enum": list(r.ERROR_KINDS)}
    defs["HealthFlag"]["properties"]["kind"] = {"enum": list(r.HEALTH_FLAG_KINDS)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:skyline-tui:report:1",
        "title": "skyline-tui profile report",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def _object_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, vars(r))
    properties = {f.name: _type_schema(hints[f.name], defs) for f in dataclasses.fields(cls)}
    return {
        "type": "object",
        "properties": properties,
        # Every key is always written, so every key is required (null where unknown).
        "required": [f.name for f in dataclasses.fields(cls)],
        "additionalProperties": False,
    }


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(arg, defs) for arg in typing.get_args(tp) if arg is not type(None)]
        return {"anyOf": [*options, {"type": "null"}]}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(typing.get_args(tp)[0], defs)}
    if origin is dict:  # string keys (JSON), one value type
        return {"type": "object", "additionalProperties": _type_schema(typing.get_args(tp)[1], defs)}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # reserve the name first: recursion-safe
            defs[name] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    return dict(_PRIMITIVES[tp])


def main() -> None:
    print(json.dumps(json_schema(), indent=2))


if __name__ == "__main__":
    main()
