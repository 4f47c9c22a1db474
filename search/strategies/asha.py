"""``scheduler.name: asha``: Asynchronous Successive Halving. At each *rung* (epochs
``grace_epochs * reduction_factor**k``) a trial continues only if it is in the top
1/``reduction_factor`` of the trials that reached that rung before it; the rest stop early."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from search.strategies import SCHEDULERS
from search.strategies.base import Scheduler

if TYPE_CHECKING:
    from search.experiment import SchedulerSettings


@SCHEDULERS.register("asha")
class Asha(Scheduler):
    name = "asha"
    stops_early = True

    def rungs(self, settings: SchedulerSettings) -> list[int]:
        """Ray's milestones: grace * eta**k below max_epochs."""
        out, t = [], settings.grace_epochs
        while t < settings.max_epochs:
            out.append(t)
            t *= settings.reduction_factor
        return out

    def trial_epochs(self, trials: int, settings: SchedulerSettings) -> int:
        """Trial-epochs when rung i keeps ceil(n / eta**i) trials (synchronous halving)."""
        bounds = [*self.rungs(settings), settings.max_epochs]
        total, prev = 0, 0
        for i, bound in enumerate(bounds):
            alive = math.ceil(trials / settings.reduction_factor**i) if trials else 0
            total += alive * (bound - prev)
            prev = bound
        return total

    def ray_scheduler(self, settings: SchedulerSettings, *, metric: str, mode: str) -> Any:
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=settings.max_epochs,
            grace_period=settings.grace_epochs,
            reduction_factor=settings.reduction_factor,
        )
