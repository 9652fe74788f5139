"""Sweeps: a grid of knob settings (a Skeletor-shaped YAML file), each profiled as one trial, locally
through one warm worker or on Ray.  Nothing here imports torch or textual in the parent process."""
