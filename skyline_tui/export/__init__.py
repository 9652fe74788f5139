"""Ways a report leaves skyline-tui: the JSON report file and the Chrome/Perfetto trace.  Torch-free."""
