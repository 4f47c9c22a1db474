"""``search.algorithm: grid``: every combination of the list dimensions, ``search.num_samples``
seeded draws of the distributions per combination, times the ``repeats`` seeds; shuffled with
``search.seed``, because Ray's asynchronous ASHA depends on the order trials reach a rung."""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING, Any

import numpy as np

from search.strategies import SEARCHERS
from search.strategies.base import Searcher
from search.tune_space import sample
from spaces.dimensions import Distribution, Fixed, Grid

if TYPE_CHECKING:
    from search.experiment import Experiment


def with_seeds(exp: Experiment, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each config once per repeat seed, on top of the base config; shuffled with the seed."""
    from search.experiment import base_config

    base = base_config(exp)
    points = [{**base, **c, "seed": s} for c in configs for s in exp.seeds]
    random.Random(exp.search.seed).shuffle(points)
    return points


def drawn_configs(
    exp: Experiment, combos: list[dict[str, Any]], drawn: list[str]
) -> list[dict[str, Any]]:
    """``num_samples`` seeded draws of the ``drawn`` keys for every combination."""
    rng = np.random.default_rng(exp.search.seed)
    fixed = {k: d.value for k, d in exp.space.items() if isinstance(d, Fixed)}
    count, configs = exp.search.num_samples, []
    for combo in combos:
        draws = {k: sample(exp.space[k], count, rng) for k in drawn}  # type: ignore[arg-type]
        for i in range(count):
            configs.append({**fixed, **combo, **{k: v[i] for k, v in draws.items()}})
    return configs


@SEARCHERS.register("grid")
class GridSearch(Searcher):
    name = "grid"
    limits_concurrency = True  # BasicVariantGenerator(max_concurrent=...)

    def points(self, exp: Experiment) -> list[dict[str, Any]]:
        grid = {k: d.values for k, d in exp.space.items() if isinstance(d, Grid)}
        drawn = [k for k, d in exp.space.items() if isinstance(d, Distribution)]
        combos = [dict(zip(grid, v, strict=True)) for v in itertools.product(*grid.values())]
        return with_seeds(exp, drawn_configs(exp, combos, drawn))

    def ray_searcher(
        self, exp: Experiment, points: list[dict[str, Any]], *, metric: str, mode: str
    ) -> Any:
        from ray.tune.search import BasicVariantGenerator

        # the points are already shuffled with the search seed
        return BasicVariantGenerator(
            points_to_evaluate=[dict(p) for p in points],
            random_state=exp.search.seed,
            max_concurrent=exp.search.max_concurrent or 0,  # 0: no limit
        )
