"""The two small base classes of search strategies (what to try) and schedulers (how long)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from search.experiment import Experiment, SchedulerSettings


class Searcher(ABC):
    """Which trial configurations run: expanded before launch, or suggested while running."""

    name: ClassVar[str]
    expands: ClassVar[bool] = True  # True: every trial config is known before launch
    # True: ``ray_searcher`` applies ``search.max_concurrent`` itself. Ray applies
    # ``TuneConfig(max_concurrent_trials)`` only to a ``Searcher`` (ConcurrencyLimiter) and
    # ignores it, with a warning, for a search generator such as BasicVariantGenerator.
    limits_concurrency: ClassVar[bool] = False

    def check(self, exp: Experiment) -> None:
        """Rules this strategy puts on the experiment (raise UserError)."""
        return None

    def points(self, exp: Experiment) -> list[dict[str, Any]]:
        """Every trial config (space values + seed), in launch order; [] when not expanding."""
        return []

    def seed_value(self, exp: Experiment) -> int:
        """The ``seed`` of the param space (points override it)."""
        return exp.seeds[0]

    @abstractmethod
    def ray_searcher(
        self, exp: Experiment, points: list[dict[str, Any]], *, metric: str, mode: str
    ) -> Any:
        """Ray Tune's search algorithm for ``tune.TuneConfig(search_alg=...)``."""

    def num_samples(self, exp: Experiment, points: list[dict[str, Any]]) -> int:
        return len(points)


class Scheduler(ABC):
    """When trials stop: ``max_epochs`` for all (FIFO) or early stopping at rungs (ASHA)."""

    name: ClassVar[str]
    stops_early: ClassVar[bool] = False  # True: grace_epochs and reduction_factor apply

    def rungs(self, settings: SchedulerSettings) -> list[int]:
        """The epochs at which trials are compared ([] for none)."""
        return []

    def trial_epochs(self, trials: int, settings: SchedulerSettings) -> int:
        """Expected trial-epochs of ``trials`` trials."""
        return trials * settings.max_epochs

    @abstractmethod
    def ray_scheduler(self, settings: SchedulerSettings, *, metric: str, mode: str) -> Any:
        """Ray Tune's trial scheduler for ``tune.TuneConfig(scheduler=...)``."""
