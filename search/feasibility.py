"""Which trial points cannot run: infeasible encoder/decoder pairs, init sources without weights.

A thin adapter over the trainables' own checks (``trainables.models.check_feasible`` and the init
registry), cached per combination; each returns a one-line reason or ``None``. Used by the plan
(grid points are dropped before launch) and by the trial wrapper (sampled points under Optuna
report ``infeasible`` without training).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Checker = Callable[[Mapping[str, Any]], str | None]

DEFAULTS = {"encoder": "resnet18", "decoder": "Unet", "init": "none"}


@functools.lru_cache(maxsize=4096)
def pair_reason(decoder: str, encoder: str) -> str | None:
    """smp's reason why ``decoder`` cannot take ``encoder``, or None."""
    from trainables.models import check_feasible

    return check_feasible(decoder, encoder)


@functools.lru_cache(maxsize=4096)
def init_reason(init: str, encoder: str, zoo_dir: str | None, cache_dir: str | None) -> str | None:
    """Why init source ``init`` has no weights for ``encoder``, or None (downloads nothing)."""
    if init == "none":
        return None
    from trainables.inits import check_available

    return check_available(
        init, encoder, zoo_dir=zoo_dir, cache_dir=Path(cache_dir) if cache_dir else None
    )


def segmentation_reason(point: Mapping[str, Any]) -> str | None:
    """The first reason ``point`` (a trial config) cannot be trained, or None."""
    if "encoder" not in point and "decoder" not in point and "init" not in point:
        return None
    get = {**DEFAULTS, **point}.get
    reason = pair_reason(get("decoder"), get("encoder"))
    if reason:
        return f"{get('decoder')} with {get('encoder')}: {reason}"
    reason = init_reason(get("init"), get("encoder"), get("zoo_dir"), get("cache_dir"))
    if reason:
        return f"init {get('init')} for {get('encoder')}: {reason}"
    return None


def no_check(point: Mapping[str, Any]) -> str | None:
    return None


def checker_for(kind: str) -> Checker:
    """Segmentation (and custom trainables naming encoder/decoder) get the model checks."""
    return no_check if kind == "pretraining" else segmentation_reason
