"""skyline-tui: a terminal profiler for the training performance of PyTorch models."""

__version__ = "0.1.0"
TOOL_NAME = "skyline-tui"
