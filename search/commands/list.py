"""``microsweep list encoders|decoders|inits|presets``: what an experiment file may name."""

from __future__ import annotations

import argparse

WHAT = ("encoders", "decoders", "inits", "presets")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("list", help="list encoders, decoders, init sources or presets")
    parser.add_argument("what", choices=WHAT, help="what to list")
    parser.set_defaults(func=run)


def lines(what: str) -> list[str]:
    """The lines ``microsweep list WHAT`` prints."""
    if what == "presets":
        from spaces.presets import describe, list_presets

        return [f"{name:14s} {describe(name)}" for name in list_presets()]
    if what == "inits":
        from trainables.inits import describe_inits

        return [f"{name:16s} {summary}" for name, summary in describe_inits().items()]
    from trainables import models

    return list(models.list_encoders() if what == "encoders" else models.list_decoders())


def run(args: argparse.Namespace) -> int:
    print("\n".join(lines(args.what)))
    return 0
