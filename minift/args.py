"""The command line's shared argument helpers: the flags every subcommand spells the same way.

Kept apart from ``cli.py`` so that the modules whose subcommands use them (``cli_tasks.py``) and
``cli.py``, which gathers every subcommand, do not import each other.
"""
from __future__ import annotations

import argparse


def add_device(p):
    p.add_argument("--device", default="auto",
                   help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)")


def add_quiet(p):
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def positive(text: str) -> int:
    """argparse type: an integer >= 1 (so --limit 0 or --examples -5 is refused at the edge)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a learning-rate multiplier of 0 or -1 is refused at the edge)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def lr_scale_arg(text: str) -> float | str:
    """argparse type of ``--lr-scale``: a number > 0, or ``tuned`` (the strategy grid's own multiplier)."""
    if text == "tuned":
        return text
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'tuned', got {text!r}") from None
