"""``microsweep`` command line: a thin shell over functions a Python user can call directly."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

from core.errors import DataError, Interrupted, UserError
from search.commands import COMMAND_MODULES

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # as a shell reports Ctrl+C


def _version() -> str:
    try:
        return version("microsweep")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``microsweep`` parser; with ``argv`` naming a command, only that command's module is
    imported (a few modules import torch or pandas for their defaults: seconds per start)."""
    parser = argparse.ArgumentParser(
        prog="microsweep",
        description="Hyperparameter and architecture sweeps for microscopy segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"microsweep {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    named = next((a for a in argv or () if not a.startswith("-")), None)
    for name in (named,) if named in COMMAND_MODULES else COMMAND_MODULES:
        module = importlib.import_module(f"search.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except Interrupted as err:
        print(f"microsweep: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DataError as err:
        for line in err.problems:
            print(f"microsweep: error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    except UserError as err:
        print(f"microsweep: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("microsweep: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
