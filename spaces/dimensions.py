"""Search dimensions: a fixed value, a list (a grid axis), or a distribution.

In an experiment file each key of ``space:`` is one of

```yaml
lr: 2.0e-4                        # fixed value
encoder: [resnet18, mobilenet_v2] # list: a grid axis (sampled like `choice` by random/optuna)
bce_weight: {uniform: [0.3, 0.9]} # distribution: uniform, loguniform, quniform, qloguniform,
lr: {loguniform: [1.0e-5, 1.0e-3]}#   randint, qrandint, choice, randn
```

:func:`parse_dimension` validates one entry. Dimensions are plain data: ``search.tune_space``
is the one module that maps them onto Ray Tune's search-space API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import closest


class SpaceError(ValueError):
    """A malformed dimension; the message names the key (``space.<key>``)."""


# name -> (number of arguments, argument kinds). quniform etc. take (low, high, q).
DISTRIBUTIONS: dict[str, tuple[int, ...]] = {
    "uniform": (2,),
    "loguniform": (2,),
    "quniform": (3,),
    "qloguniform": (3,),
    "randint": (2,),
    "qrandint": (3,),
    "randn": (2,),  # mean, sd
    "choice": (),  # any non-empty list
}


@dataclass(frozen=True)
class Fixed:
    value: Any


@dataclass(frozen=True)
class Grid:
    """A grid axis: every value is tried (``grid``), or one is drawn (``random``/``optuna``)."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Distribution:
    name: str
    args: tuple[Any, ...]


Dimension = Fixed | Grid | Distribution


def parse_dimension(key: str, raw: Any) -> Dimension:
    """One ``space:`` entry -> a dimension; :class:`SpaceError` names ``space.<key>``."""
    if isinstance(raw, Mapping):
        return _parse_distribution(key, raw)
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        values = tuple(raw)
        if not values:
            raise SpaceError(f"space.{key} must be a non-empty list, but got []")
        if len(set(map(repr, values))) != len(values):
            raise SpaceError(f"space.{key} lists a value twice: {list(values)}")
        return Grid(values)
    return Fixed(raw)


def _parse_distribution(key: str, raw: Mapping[str, Any]) -> Distribution:
    if len(raw) != 1:
        raise SpaceError(
            f"space.{key} must be a mapping with one distribution "
            f"({', '.join(DISTRIBUTIONS)}), but got keys {sorted(map(str, raw))}"
        )
    ((name, args),) = raw.items()
    if name not in DISTRIBUTIONS:
        close = closest(str(name), DISTRIBUTIONS, cutoff=0.6)
        hint = f"; did you mean '{close}'?" if close else ""
        raise SpaceError(
            f"space.{key}: unknown distribution '{name}'{hint} "
            f"(choose from: {', '.join(DISTRIBUTIONS)})"
        )
    if not isinstance(args, Sequence) or isinstance(args, str) or not args:
        raise SpaceError(f"space.{key}.{name} must be a non-empty list, but got {args!r}")
    args = tuple(args)
    if name == "choice":
        return Distribution(name, args)
    _check_numeric(key, name, args)
    return Distribution(name, args)


def _check_numeric(key: str, name: str, args: tuple[Any, ...]) -> None:
    (count,) = DISTRIBUTIONS[name]
    where = f"space.{key}.{name}"
    if len(args) != count:
        shape = "[low, high]" if count == 2 else "[low, high, q]"
        if name == "randn":
            shape = "[mean, sd]"
        raise SpaceError(f"{where} must be {shape}, but got {list(args)}")
    if any(isinstance(a, bool) or not isinstance(a, int | float) for a in args):
        raise SpaceError(f"{where} takes numbers, but got {list(args)}")
    low, high = args[0], args[1]
    if name == "randn":
        if high <= 0:
            raise SpaceError(f"{where}: sd must be > 0, but got {high}")
        return
    if not low < high:
        raise SpaceError(f"{where}: low must be < high, but got {low} >= {high}")
    if "log" in name and low <= 0:
        raise SpaceError(f"{where}: low must be > 0 for a log scale, but got {low}")
    if name.startswith("q") and args[2] <= 0:
        raise SpaceError(f"{where}: q must be > 0, but got {args[2]}")
    if "randint" in name and not all(isinstance(a, int) for a in args):
        raise SpaceError(f"{where} takes integers, but got {list(args)}")


def parse_space(raw: Mapping[str, Any]) -> dict[str, Dimension]:
    """Every ``space:`` entry parsed, in file order."""
    return {str(k): parse_dimension(str(k), v) for k, v in raw.items()}
