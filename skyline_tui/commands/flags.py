"""Flags that several verbs take, declared once: the same spelling, help and default wherever they appear."""

from __future__ import annotations

import argparse

from skyline_tui.argtypes import positive_float
from skyline_tui.config import ProfileConfig

ROOT_HELP = ("project root: what is watched and counted as project code (default: the nearest folder up from "
             "the entry point holding .git, pyproject.toml, setup.py or setup.cfg, not above your home; else "
             "the entry's folder)")


def add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", metavar="DIR", help=ROOT_HELP)


def add_timeout(parser: argparse.ArgumentParser, what: str = "run") -> None:
    parser.add_argument("--timeout", type=positive_float, default=ProfileConfig.timeout_s, metavar="S",
                        help=f"stop a {what} that takes longer than S seconds (default: %(default)g)")


def add_breakdown(parser: argparse.ArgumentParser, default: bool) -> None:
    """``--no-breakdown`` / ``--breakdown``: the profile measures the run-time breakdown unless told not to, a
    sweep's trials only when asked; both verbs take both spellings."""
    # The default through set_defaults: given to the action, Python 3.10-3.12 would append its own
    # "(default: False)" to the help.
    parser.add_argument("--breakdown", action=argparse.BooleanOptionalAction,
                        help="measure the run-time breakdown, per line and module (default: "
                             f"{'on; --no-breakdown skips it' if default else 'off'})")
    parser.set_defaults(breakdown=default)


def add_recording(parser: argparse.ArgumentParser, what: str = "run") -> None:
    """Where a verb that runs profiles records them."""
    parser.add_argument("--history", metavar="PATH", help=f"record each {what} in this history store (default: "
                        "$SKYLINE_TUI_HISTORY, else <project root>/.skyline-tui/history.db)")
    parser.add_argument("--no-history", action="store_true", help="record nothing in the history store")


def add_store(parser: argparse.ArgumentParser) -> None:
    """The store a verb that reads the history reads."""
    parser.add_argument("--history", metavar="PATH", help="the history store (default: the nearest "
                                                          ".skyline-tui/history.db, or $SKYLINE_TUI_HISTORY)")


def add_quiet(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=help)
