"""``microsweep status RUN [--watch [SECONDS]]``: where a sweep stands, from its run folder."""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "status",
        help="counts, best so far, running trials, failures and ETA of a sweep's run folder",
        description="Read a run folder (local or s3://...) of a running or finished sweep. "
        "Never contacts Ray, so it works from any machine that can read the storage.",
    )
    parser.add_argument("run", help="the run folder, STORAGE/NAME (a path or a URI)")
    parser.add_argument(
        "--watch", nargs="?", type=float, const=10.0, default=None, metavar="SECONDS",
        help="refresh every SECONDS (default 10) until the sweep has finished or Ctrl-C",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from analysis.status import format_status, read_status

    if args.watch is not None and args.watch <= 0:
        from core.errors import UserError

        raise UserError(f"`--watch` must be > 0 seconds, but got {args.watch:g}")
    tty = sys.stdout.isatty()
    while True:
        snap = read_status(args.run)
        text = format_status(snap, run=args.run)
        if args.watch is not None and tty:
            text = "\x1b[H\x1b[2J" + text  # redraw in place
        print(text, flush=True)
        if args.watch is None or snap.finished:
            return 0
        time.sleep(args.watch)
