"""Everything that imports Textual.  No module outside this package imports it, except ``cli``, lazily, for
the interactive command; nothing in it imports torch.

What sits where:

- At the top (``tui/*.py``): what holds or moves the data, and what works it out.  The app and the handlers it
  is built from (``app.py``, ``history_actions.py``, ``launch.py``); its one state and the pure transitions
  that replace it (``state.py``); the bridges between the app and the worker, the file watcher, the history
  store and the GPU (``bridge.py``, ``profile_on_save.py``, ``watch.py``, ``history_sink.py``, ``gpu.py``,
  ``shutdown.py``); and the pure functions that turn a report into what a pane lists (``table_rows.py``,
  ``module_tree.py``, ``health_rows.py``), testable without a terminal.  The live view of ``skyline-tui run``
  follows the same split: its app (``run_app.py``, started by ``run_launch.py``), its one state folded from the
  run's events (``run_state.py``, with the metric series in ``run_metrics.py`` and the bounded curves in
  ``curve.py``).
- In ``views/``: widgets and screens, and the helpers that draw them (number formats, bars, Δ cells).  A view
  renders the state and the rows it is given; it may call the pure functions above to lay them out, but it
  holds no state of its own beyond what Textual needs to draw, and decides nothing the app must know.

The arrows point into ``views/``: a view imports the top's types and pure functions; of the top, only the
apps' own modules (``app.py``, ``history_actions.py`` and ``run_app.py``, which mount the views) import
``views/``.  ``tests/architecture/test_layout.py`` checks it.
"""
