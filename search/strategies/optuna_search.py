"""``search.algorithm: optuna``: Optuna's TPE sampler (Tree-structured Parzen Estimator: it
proposes configurations where good ones were found) through Ray's ``OptunaSearch``, seeded;
``search.num_samples`` trials, each configuration once (``repeats: 1``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import UserError
from search.strategies import SEARCHERS
from search.strategies.base import Searcher
from spaces.dimensions import Fixed

if TYPE_CHECKING:
    from search.experiment import Experiment


@SEARCHERS.register("optuna")
class OptunaTPE(Searcher):
    name = "optuna"
    expands = False

    def check(self, exp: Experiment) -> None:
        if exp.repeats != 1:
            raise UserError(
                "repeats must be 1 with search.algorithm=optuna (Optuna samples each "
                f"configuration once; raise search.num_samples instead), but got {exp.repeats}"
            )
        if all(isinstance(d, Fixed) for d in exp.space.values()):
            raise UserError(
                "search.algorithm=optuna needs at least one list or distribution in `space`"
            )

    def seed_value(self, exp: Experiment) -> int:
        return exp.search.seed

    def num_samples(self, exp: Experiment, points: list[dict[str, Any]]) -> int:
        return exp.search.num_samples

    def ray_searcher(
        self, exp: Experiment, points: list[dict[str, Any]], *, metric: str, mode: str
    ) -> Any:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        sampler = optuna.samplers.TPESampler(seed=exp.search.seed)
        return OptunaSearch(sampler=sampler, metric=metric, mode=mode)
