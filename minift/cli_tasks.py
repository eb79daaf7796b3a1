"""The task, fine-tuning and course subcommands of ``minift`` (see cli.py for the conventions)."""
from __future__ import annotations


def register(sub) -> None:
    """Add this module's subcommands to the ``minift`` parser."""
