"""Search strategies and schedulers as registries: one class in one file per strategy.

``search.algorithm`` names a :class:`Searcher` (grid, random, optuna) and ``scheduler.name``
a :class:`Scheduler` (asha, fifo). Each file registers its class; adding BOHB or PBT is one
more file here plus its name in ``BUILTIN``. Ray's objects are built lazily in
``ray_searcher`` / ``ray_scheduler``, so planning never needs ray.

Example::

    get_searcher("grid").points(exp)          # every trial config, shuffled with the seed
    get_scheduler("asha").rungs(exp.scheduler)
"""

from __future__ import annotations

import importlib

from core.registry import Registry
from search.strategies.base import Scheduler, Searcher

SEARCHERS: Registry[type[Searcher]] = Registry("search algorithm")
SCHEDULERS: Registry[type[Scheduler]] = Registry("scheduler")
BUILTIN = ("grid_search", "random_search", "optuna_search", "listed", "asha", "fifo")


def _load() -> None:
    for name in BUILTIN:
        importlib.import_module(f"search.strategies.{name}")


def get_searcher(name: str) -> Searcher:
    _load()
    return SEARCHERS.get(name)()


def get_scheduler(name: str) -> Scheduler:
    _load()
    return SCHEDULERS.get(name)()


def list_searchers() -> tuple[str, ...]:
    _load()
    return SEARCHERS.names()


def list_schedulers() -> tuple[str, ...]:
    _load()
    return SCHEDULERS.names()
