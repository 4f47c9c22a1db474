"""`microsweep data`: not implemented yet."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("data", help="(not implemented yet)")
