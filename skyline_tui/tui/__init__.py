"""Everything that imports Textual.  No module outside this package imports it, except ``cli``, lazily, for
the interactive command; nothing in it imports torch.

What sits where:

- At the top (``tui/*.py``): what holds or moves the data, and what works it out.  The app and the handlers it
  is built from (``app.py``, ``history_actions.py``, ``launch.py``); its one state and the pure transitions
  that replace it (``state.py``); the bridges between the app and the worker, the file watcher, the history
  store and the GPU (``bridge.py``, ``profile_on_save.py``, ``watch.py``, ``history_sink.py``, ``gpu.py``,
  ``shutdown.py``); and the pure functions that turn a report into what a pane lists (``table_rows.py``,
  ``module_tree.py``, ``health_rows.py``, ``targets.py``), testable without a terminal.
- In ``views/``: widgets and screens, and the helpers that draw them (number formats, bars, Δ cells).  A view
  renders the state and the rows it is given; it may call the pure functions above to lay them out, but it
  holds no state of its own beyond what Textual needs to draw, and decides nothing the app must know.

The arrows point into ``views/``: a view imports the top's types and pure functions; of the top, only the
app's own modules (``app.py`` and ``history_actions.py``, which mount the views) import ``views/``.
``tests/test_layout.py`` checks it.
"""
