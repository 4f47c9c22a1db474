"""``scheduler.name: fifo``: every trial runs until its own schedule ends it (patience or
``max_epochs``); nothing is stopped early."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.strategies import SCHEDULERS
from search.strategies.base import Scheduler

if TYPE_CHECKING:
    from search.experiment import SchedulerSettings


@SCHEDULERS.register("fifo")
class Fifo(Scheduler):
    name = "fifo"

    def ray_scheduler(self, settings: SchedulerSettings, *, metric: str, mode: str) -> Any:
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()
