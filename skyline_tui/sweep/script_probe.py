"""Read a training script's argument parser without training: run the script up to its ``parse_args``.

``python -m skyline_tui.sweep.script_probe REQUEST.json`` (REQUEST: ``{script, args, trials, out}``) runs
the script as ``__main__`` with ``argparse.ArgumentParser.parse_known_args`` replaced.  The first parser
the script parses with is captured: its options are written to ``out`` with, for each trial's knobs, the
parser's own verdict on the resulting argv (its error message, or none), and the process ends at once
(``os._exit``), before the script's next line.  A script that ends without parsing says so.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from typing import Any, NoReturn

from skyline_tui.sweep.script_options import KnobError, knob_arguments, options_of

PARSE_METHODS = ("parse_known_args", "parse_known_intermixed_args")


class _Refused(Exception):
    pass


def _verdict(parser: argparse.ArgumentParser, original: Any, argv: list[str]) -> str | None:
    """What the script's own parser says of ``argv``: None, or its error message."""

    def refuse(message: str) -> NoReturn:
        raise _Refused(message)

    parser.error = refuse  # type: ignore[method-assign]  # argparse reports every bad argv through error()
    try:
        _namespace, extra = original(parser, argv)
        if extra:
            return f"unrecognized arguments: {' '.join(extra)}"
    except _Refused as exc:
        return str(exc)
    except SystemExit as exc:  # a custom action that exits
        return f"the parser exited ({exc.code})"
    except Exception as exc:  # noqa: BLE001 - a type= converter that raises something else
        return f"{type(exc).__name__}: {exc}"
    return None


def _write(path: str, document: dict[str, Any]) -> NoReturn:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(document, fh)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # nothing of the script after parse_args may run: no atexit, no finally


def main(request_path: str) -> None:
    with open(request_path, encoding="utf-8") as fh:
        request = json.load(fh)
    originals = {name: getattr(argparse.ArgumentParser, name) for name in PARSE_METHODS}

    def captured(parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> NoReturn:
        for name, method in originals.items():
            setattr(argparse.ArgumentParser, name, method)
        options = options_of(parser)
        verdicts: list[str | None] = []
        for knobs in request["trials"]:
            try:
                argv = [*request["args"], *knob_arguments(knobs, options)]
            except (KeyError, KnobError):
                verdicts.append(None)  # the parent names unknown keys and bad flags itself
                continue
            verdicts.append(_verdict(parser, originals["parse_known_args"], argv))
        _write(request["out"], {"parsed": True, "prog": parser.prog,
                                "options": [o.to_dict() for o in options], "verdicts": verdicts})

    for name in PARSE_METHODS:
        setattr(argparse.ArgumentParser, name, captured)
    script = request["script"]
    sys.argv = [script, *request["args"]]
    sys.path[0] = os.path.dirname(script)  # as `python script.py` would have it
    runpy.run_path(script, run_name="__main__")
    _write(request["out"], {"parsed": False})


if __name__ == "__main__":
    main(sys.argv[1])
