"""``microsweep list encoders|decoders|inits|presets|tasks|strategies``: what an experiment
file may name."""

from __future__ import annotations

import argparse

WHAT = ("encoders", "decoders", "inits", "presets", "tasks", "strategies")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "list", help="list encoders, decoders, init sources, presets, tasks or strategies"
    )
    parser.add_argument("what", choices=WHAT, help="what to list")
    parser.set_defaults(func=run)


def lines(what: str) -> list[str]:
    """The lines ``microsweep list WHAT`` prints."""
    if what == "presets":
        from spaces.presets import describe, list_presets

        return [f"{name:14s} {describe(name)}" for name in list_presets()]
    if what == "tasks":
        from trainables.task import get_task, list_tasks

        return [f"{name:14s} objective {get_task(name).metric}" for name in list_tasks()]
    if what == "strategies":
        from search.strategies import list_schedulers, list_searchers

        return [f"search.algorithm: {', '.join(list_searchers())}",
                f"scheduler.name:   {', '.join(list_schedulers())}"]  # fmt: skip
    if what == "inits":
        from trainables.inits import describe_inits

        return [f"{name:16s} {summary}" for name, summary in describe_inits().items()]
    from trainables import models

    return list(models.list_encoders() if what == "encoders" else models.list_decoders())


def run(args: argparse.Namespace) -> int:
    print("\n".join(lines(args.what)))
    return 0
