"""Which trial points cannot run: infeasible encoder/decoder pairs, init sources without weights.

A thin adapter over the trainables' own checks (``trainables.models.check_feasible`` and the init
registry); each returns a one-line reason or ``None``. Used by the segmentation task (grid
points are dropped before launch) and by the trial wrapper (sampled points under Optuna report
``infeasible`` without training).

Pair checks build each model on the meta device (up to a second for large encoders; the
``paper`` preset has 252 pairs), so their answers are kept on disk in
``$MICROSWEEP_CACHE/feasibility.json``, keyed by the smp, timm and torch versions that gave them:
a new version of any of the three starts afresh. The file is only a cache: a corrupt or foreign
one is ignored and rewritten.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core import storage
from trainables.task import Progress

DEFAULTS = {"encoder": "resnet18", "decoder": "Unet", "init": "none"}
CACHE_FILE = "feasibility.json"


def _cache_path() -> Path:
    from trainables.weights_cache import default_cache_dir

    return default_cache_dir() / CACHE_FILE


PROBE_SIZE = 256  # shape-only forward on the meta device: the size costs nothing
LIBRARIES = (  # (name in the cache's key, distribution, module)
    ("smp", "segmentation-models-pytorch", "segmentation_models_pytorch"),
    ("timm", "timm", "timm"),
    ("torch", "torch", "torch"),
)


@functools.cache
def versions() -> str:
    """What the cached answers depend on: smp, timm and torch versions (from their package
    metadata: a trial whose pairs are all cached imports none of them) and the probe size."""
    libraries = ", ".join(f"{name} {_version(dist, module)}" for name, dist, module in LIBRARIES)
    return f"{libraries}, probe {PROBE_SIZE}"


def _version(dist: str, module: str) -> str:
    from importlib import import_module
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # installed without metadata (some conda builds): ask it
        return str(import_module(module).__version__)


def _read_cache(path: Path) -> dict[str, str | None]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("versions") != versions():
        return {}
    pairs = data.get("pairs")
    return pairs if isinstance(pairs, dict) else {}


def _save_cache(path: Path, new: dict[str, str | None]) -> None:
    """Merge ``new`` into the file under a lock (trials of one node may write at once)."""
    from trainables.fileutil import folder_lock

    try:
        with folder_lock(path.parent):
            pairs = {**_read_cache(path), **new}
            storage.write_json(path, {"versions": versions(), "pairs": pairs})
    except OSError:
        pass  # a read-only cache folder costs time, never correctness


@functools.lru_cache(maxsize=8)
def _disk_pairs(path: Path) -> dict[str, str | None]:
    return _read_cache(path)


def _key(decoder: str, encoder: str) -> str:
    return f"{decoder}|{encoder}"


def check_pairs(
    pairs: Iterable[tuple[str, str]], *, progress: Progress | None = None
) -> dict[tuple[str, str], str | None]:
    """smp's reason (or None) for each ``(decoder, encoder)``, from the disk cache when known.

    ``progress(done, total)`` is called after each pair that had to be built.
    """
    path = _cache_path()
    known = _disk_pairs(path)
    pairs = list(dict.fromkeys(pairs))
    todo = [p for p in pairs if _key(*p) not in known]
    new: dict[str, str | None] = {}
    if todo:  # smp and torch only when a pair must be built
        from trainables.models import check_feasible
    for i, (decoder, encoder) in enumerate(todo, 1):
        new[_key(decoder, encoder)] = check_feasible(decoder, encoder)
        if progress:
            progress(i, len(todo))
    if new:
        known.update(new)
        _save_cache(path, new)
    return {p: known[_key(*p)] for p in pairs}


def pair_reason(decoder: str, encoder: str) -> str | None:
    """smp's reason why ``decoder`` cannot take ``encoder``, or None."""
    return check_pairs([(decoder, encoder)])[(decoder, encoder)]


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


def model_pairs(points: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The ``(decoder, encoder)`` pairs of the points that name a model."""
    get = [{**DEFAULTS, **p}.get for p in points if any(k in p for k in DEFAULTS)]
    return [(g("decoder"), g("encoder")) for g in get]
