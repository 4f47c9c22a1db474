"""The one translation of our search dimensions (``spaces.dimensions``: plain data) into Ray
Tune's search-space API, and seeded draws through Ray's own samplers.

Example::

    to_tune(Distribution("loguniform", (1e-5, 1e-3)))   # tune.loguniform(1e-5, 1e-3)
    sample(Grid(("Unet", "FPN")), 3, np.random.default_rng(0))
"""

from __future__ import annotations

from typing import Any

from spaces.dimensions import Dimension, Distribution, Fixed, Grid


def to_tune(dimension: Dimension) -> Any:
    """A fixed value as itself; a grid axis as ``tune.choice``; a distribution as its own."""
    if isinstance(dimension, Fixed):
        return dimension.value
    from ray import tune

    if isinstance(dimension, Grid):
        return tune.choice(list(dimension.values))
    if dimension.name == "choice":
        return tune.choice(list(dimension.args))
    return getattr(tune, dimension.name)(*dimension.args)


def sample(dimension: Distribution | Grid, count: int, rng: Any) -> list[Any]:
    """``count`` seeded draws through Ray's own samplers, as plain Python values."""
    values = to_tune(dimension).sample(size=count, random_state=rng)
    if hasattr(values, "tolist"):  # some of Ray's samplers return numpy arrays
        values = values.tolist()
    if count == 1 or not isinstance(values, list):
        values = [values]
    return [v.item() if hasattr(v, "item") else v for v in values]
