"""Which trial points cannot run: infeasible encoder/decoder pairs, init sources without weights.

A thin adapter over the trainables' own checks (``trainables.models.check_feasible`` and the init
registry), cached per combination; each returns a one-line reason or ``None``. Used by the plan
(grid points are dropped before launch) and by the trial wrapper (sampled points under Optuna
report ``infeasible`` without training).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Checker = Callable[[Mapping[str, Any]], str | None]

DEFAULTS = {"encoder": "resnet18", "decoder": "Unet", "init": "none"}


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


@functools.lru_cache(maxsize=4096)
def pair_reason(decoder: str, encoder: str) -> str | None:
    """smp's reason why ``decoder`` cannot take ``encoder``, or None."""
    check = _optional("trainables.models", "check_feasible")
    return None if check is None else check(decoder, encoder)


@functools.lru_cache(maxsize=4096)
def init_reason(init: str, encoder: str, zoo_dir: str | None, cache_dir: str | None) -> str | None:
    """Why init source ``init`` has no weights for ``encoder``, or None."""
    if init == "none":
        return None
    check = _optional("trainables.inits", "check_available")
    if check is not None:
        return check(init, encoder, zoo_dir=zoo_dir, cache_dir=cache_dir)
    return _published_reason(init, encoder, zoo_dir)


def _published_reason(init: str, encoder: str, zoo_dir: str | None) -> str | None:
    """Whether the source publishes weights for ``encoder`` (downloads are checked in trials)."""
    try:
        from trainables import inits
    except ImportError:
        return None
    lists = {"micronet": "MICRONET_ENCODERS", "image-micronet": "IMAGE_MICRONET_ENCODERS"}
    if init in lists:
        if encoder not in getattr(inits, lists[init], (encoder,)):
            return "NASA published no such encoder"
        return None
    if init == "imagenet":
        return _imagenet_reason(encoder)
    head, _, arg = init.partition(":")
    if head == "local":
        return None if Path(arg).expanduser().is_file() else f"file '{arg}' does not exist"
    return _zoo_reason(head, arg, encoder, zoo_dir)


def _imagenet_reason(encoder: str) -> str | None:
    if encoder.startswith("tu-"):
        return None
    import segmentation_models_pytorch as smp

    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {})
    return None if "imagenet" in settings else "smp has no ImageNet weights for it"


def _zoo_reason(head: str, arg: str, encoder: str, zoo_dir: str | None) -> str | None:
    from trainables.errors import UserError

    name = arg if head == "zoo" else head
    inits = importlib.import_module("trainables.inits")
    zoo = inits.resolve_zoo_dir(Path(zoo_dir) if zoo_dir else None)
    if zoo is None or not zoo.is_dir():
        return f"no encoder zoo folder (set zoo_dir or ${inits.ZOO_ENV})"
    try:
        entry = importlib.import_module("trainables.zoo").get_zoo_entry(zoo, name)
    except UserError as err:
        return str(err)
    if entry.encoder != encoder:
        return f"zoo entry '{name}' holds a {entry.encoder} encoder"
    return None


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
