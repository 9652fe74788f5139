"""Everything that imports Textual: the app, the state it folds reports into, profile-on-save, the GPU
poller and the views (widgets that only render a report).  No module outside this package imports it,
except ``cli``, lazily, for the interactive command."""
