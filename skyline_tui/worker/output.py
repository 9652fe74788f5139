"""The user's stdout and stderr during one run, on their way to the log pane.

Relayed as it comes until a per-run limit; past it, a print loop must not flood the channel, so each
stream keeps only its newest bytes (whole lines), and those are sent, after a note counting what was
dropped, when the run reports or ends.  The end of the output is what a user reads first: it is never the
part that is dropped.
"""

from __future__ import annotations

import codecs

LOG_LIMIT_BYTES = 8 * 1024 * 1024  # per run, relayed as it comes
TAIL_BYTES = 128 * 1024  # per stream past the limit: the newest output kept until the next report


class RunOutput:
    def __init__(self, streams: dict[int, str], limit: int = LOG_LIMIT_BYTES, tail: int = TAIL_BYTES):
        self.streams = streams  # fd -> "stdout" | "stderr"
        self._limit = limit
        self._tail_limit = tail
        self._decoders = {fd: codecs.getincrementaldecoder("utf-8")(errors="replace") for fd in streams}
        self._relayed = 0
        self._tails: dict[int, bytearray] = {fd: bytearray() for fd in streams}
        self.dropped_bytes = 0  # since the last flush

    def feed(self, fd: int, data: bytes) -> list[tuple[str, str]]:
        """(stream, text) to send now for ``data`` read from ``fd``."""
        if self._relayed < self._limit:
            self._relayed += len(data)
            text = self._decoders[fd].decode(data)
            return [(self.streams[fd], text)] if text else []
        tail = self._tails[fd]
        tail += data
        excess = len(tail) - self._tail_limit
        if excess > 0:
            newline = tail.find(b"\n", excess)
            cut = len(tail) if newline < 0 else newline + 1  # keep whole lines only
            self.dropped_bytes += cut
            del tail[:cut]
        return []

    def flush(self) -> list[tuple[str, str]]:
        """At a report or the end of the run: the note on what was dropped, then each stream's newest lines."""
        out: list[tuple[str, str]] = []
        if self.dropped_bytes:
            out.append(("stderr", f"[skyline-tui: {self.dropped_bytes:,} bytes of output were dropped here; "
                                  "the newest lines follow]\n"))
            self.dropped_bytes = 0
            for decoder in self._decoders.values():
                decoder.reset()  # each tail starts on a line boundary
        for fd, tail in self._tails.items():
            if tail:
                text = self._decoders[fd].decode(bytes(tail))
                tail.clear()
                if text:
                    out.append((self.streams[fd], text))
        return out
