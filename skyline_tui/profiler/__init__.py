"""The profiler: pure torch.  Loads an entry point and measures it.  Imports no UI library."""
