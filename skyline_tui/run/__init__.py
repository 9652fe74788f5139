"""``skyline-tui run train.py [ARGS]``: the user's training script, unchanged, watched step by step.

- ``launcher`` (the parent: never imports torch) starts ``child`` (the script's process), reads the events
  over a pipe and passes signals on;
- ``child`` and ``hooks`` (the script's process: never import a UI library) see the steps through torch's
  hooks, and ``steps`` decides where a step ends;
- ``events`` is the stream between them and to any view; ``summary`` what a run comes to; ``headless``
  the terminal-free output; ``command`` the verb.
"""
