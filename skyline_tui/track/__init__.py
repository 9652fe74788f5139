"""Metrics a training script logs: ``from skyline_tui import track``, then ``track.log(val_loss=0.41)``.

``track.log(step=None, **metrics)`` appends to an in-process buffer (no I/O, no device sync of its own), so
it is cheap enough for every step.  Where the buffer goes is decided once, at the first call:

- under ``skyline-tui run``, over the run's event stream to the parent, which records it with the run;
- run plainly (``python train.py``), into the project's history store (found as for a profile), every
  :data:`~skyline_tui.track.recorder.FLUSH_EVERY` records and at exit;
- nowhere with ``SKYLINE_TUI_TRACK=off`` (or ``SKYLINE_TUI_HISTORY=off`` for a plain run).

A value that is not a number is skipped with one warning per key on stderr; ``track.log`` never raises.
Importing this package imports neither torch nor textual (nor sqlite3, until the first flush).
"""

from skyline_tui.track.recorder import TRACK_ENV, flush, log

__all__ = ["TRACK_ENV", "flush", "log"]
