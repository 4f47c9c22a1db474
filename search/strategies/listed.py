"""``search.algorithm: listed``: exactly the configurations in ``search.points`` (each a
mapping of space keys), times the ``repeats`` seeds. ``recommend``'s confirm stage retrains
its candidates this way; users can list hand-picked configurations too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import UserError
from search.strategies import SEARCHERS
from search.strategies.grid_search import GridSearch, with_seeds
from spaces.dimensions import Fixed

if TYPE_CHECKING:
    from search.experiment import Experiment


@SEARCHERS.register("listed")
class ListedPoints(GridSearch):
    name = "listed"

    def check(self, exp: Experiment) -> None:
        if not exp.search.points:
            raise UserError("search.algorithm=listed needs `search.points`: a list of mappings")
        for point in exp.search.points:
            unknown = sorted(set(point) - set(exp.space))
            if unknown:
                raise UserError(
                    f"search.points: `{unknown[0]}` is not a key of `space` "
                    f"(space keys: {', '.join(exp.space)})"
                )

    def points(self, exp: Experiment) -> list[dict[str, Any]]:
        fixed = {k: d.value for k, d in exp.space.items() if isinstance(d, Fixed)}
        return with_seeds(exp, [{**fixed, **dict(p)} for p in exp.search.points])
