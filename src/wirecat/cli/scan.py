"""``wirecat scan``: placeholder until its app lands."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add scan's arguments to its subparser."""
    parser.set_defaults(handler=lambda args: 1)
