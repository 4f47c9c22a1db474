"""``search.algorithm: random``: ``search.num_samples`` configurations drawn from every varied
dimension (lists like ``choice``), times the ``repeats`` seeds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.strategies import SEARCHERS
from search.strategies.grid_search import GridSearch, drawn_configs, with_seeds
from spaces.dimensions import Fixed

if TYPE_CHECKING:
    from search.experiment import Experiment


@SEARCHERS.register("random")
class RandomSearch(GridSearch):
    name = "random"

    def points(self, exp: Experiment) -> list[dict[str, Any]]:
        drawn = [k for k, d in exp.space.items() if not isinstance(d, Fixed)]
        return with_seeds(exp, drawn_configs(exp, [{}], drawn))
