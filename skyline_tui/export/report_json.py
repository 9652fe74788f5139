"""Writing the JSON report: to stdout, through a device or FIFO, or atomically to a file."""

from __future__ import annotations

import os
import tempfile
from typing import TextIO

from skyline_tui.report import Report


def write_report(report: Report, destination: str, stdout: TextIO) -> None:
    write_text(report.to_json() + "\n", destination, stdout)


def write_text(text: str, destination: str, stdout: TextIO) -> None:
    if destination == "-":
        stdout.write(text)
        stdout.flush()
        return
    if os.path.exists(destination) and not os.path.isfile(destination):
        # /dev/null, a FIFO, /dev/stderr...: write through; renaming over it would replace the device.
        with open(destination, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    # Atomic: a reader (or a CI step) never sees half a report.
    folder = os.path.dirname(os.path.abspath(destination))
    fd, tmp = tempfile.mkstemp(prefix=".skyline-report-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, destination)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
