"""Reproducible splits of a flat layout (``images/`` + ``masks/``), written as split files.

>>> write_splits(Path("NewAlloy"), seed=0, ratios=(0.7, 0.15, 0.15))
[PosixPath('NewAlloy/splits/NewAlloy-seed0.yaml')]
>>> write_splits(Path("NewAlloy"), seed=0, folds=5)   # fold i: test = part i, val = part i+1

Pairs are sorted by name and shuffled with ``numpy.random.default_rng(seed)``, so the same
files, seed and ratios give the same split on every machine. The files use the format of the
shared ``splits/*.yaml`` with ``base: ..`` so that paths stay relative to the dataset root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from core import storage
from core.errors import DataError, UserError
from trainables.data.layout import Pair, discover

NAMES = ("train", "val", "test")
DEFAULT_RATIOS = (0.7, 0.15, 0.15)
FOLD_FILE = re.compile(r"^(?P<stem>.+)-seed(?P<seed>\d+)-fold(?P<fold>\d+)of(?P<k>\d+)\.yaml$")


def ratio_split(
    pairs: Sequence[Pair], *, seed: int, ratios: Sequence[float] = DEFAULT_RATIOS
) -> dict[str, list[Pair]]:
    """train/val/test by ratios (test may be 0); every split with a ratio > 0 gets >= 1 pair."""
    ratios = _check_ratios(ratios)
    wanted = [name for name, r in zip(NAMES, ratios, strict=True) if r > 0]
    if len(pairs) < len(wanted):
        raise UserError(f"{len(pairs)} image(s) cannot fill {len(wanted)} splits; add images")
    counts = _counts(len(pairs), ratios)
    order = _shuffled(pairs, seed)
    out, start = {}, 0
    for name, n in zip(NAMES, counts, strict=True):
        if n:
            out[name] = sorted(order[start : start + n], key=lambda p: p.name)
        start += n
    return out


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if len(ratios) not in (2, 3):
        raise UserError(f"ratios must be train,val[,test], but got {len(ratios)} numbers")
    r = (*map(float, ratios), 0.0)[:3]
    if min(r) < 0 or r[0] <= 0 or r[1] <= 0:
        raise UserError(f"ratios must be >= 0 with train and val > 0, but got {list(ratios)}")
    if abs(sum(r) - 1.0) > 1e-6:
        raise UserError(f"ratios must sum to 1, but got {list(ratios)} (sum {sum(r):g})")
    return r  # type: ignore[return-value]


def _counts(n: int, ratios: Sequence[float]) -> list[int]:
    """Largest-remainder rounding, then at least one for every split with a ratio > 0."""
    exact = [n * r for r in ratios]
    counts = [int(x) for x in exact]
    for i in sorted(range(3), key=lambda i: exact[i] - counts[i], reverse=True):
        if sum(counts) < n:
            counts[i] += 1
    for i in range(3):
        if ratios[i] > 0 and counts[i] == 0:
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return counts


def _shuffled(pairs: Sequence[Pair], seed: int) -> list[Pair]:
    ordered = sorted(pairs, key=lambda p: p.name)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in perm]


def kfold_splits(pairs: Sequence[Pair], *, k: int, seed: int) -> list[dict[str, list[Pair]]]:
    """``k`` folds: fold ``i`` tests on part ``i``, validates on part ``i+1``, trains on rest."""
    if k < 3:
        raise UserError(f"folds must be >= 3 (one part each for test and val), but got {k}")
    if k > len(pairs):
        raise UserError(f"folds must be <= the number of images ({len(pairs)}), but got {k}")
    parts = np.array_split(np.arange(len(pairs)), k)
    order = _shuffled(pairs, seed)
    folds = []
    for i in range(k):
        test, val = set(parts[i]), set(parts[(i + 1) % k])
        pick = {
            "train": [j for j in range(len(order)) if j not in test and j not in val],
            "val": sorted(val),
            "test": sorted(test),
        }
        folds.append(
            {n: sorted((order[j] for j in js), key=lambda p: p.name) for n, js in pick.items()}
        )
    return folds


def write_split_file(
    path: Path, splits: dict[str, list[Pair]], *, name: str, root: Path, source: str
) -> Path:
    """Write a split file atomically; paths relative to ``root`` via ``base``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    base = Path(os.path.relpath(root.resolve(), path.parent.resolve())).as_posix()
    doc = {
        "name": name,
        "source": source,
        "base": base,
        "splits": {
            split: [{"image": _rel(p.image, root), "mask": _rel(p.mask, root)} for p in pairs]
            for split, pairs in splits.items()
        },
    }
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    storage.write_bytes(path, text.encode("utf-8"))
    return path


def _rel(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def write_splits(
    root: Path,
    *,
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    folds: int | None = None,
    out_dir: Path | None = None,
) -> list[Path]:
    """Split a flat-layout dataset and write one split file (or one per fold)."""
    root = Path(root).resolve()
    layout = discover(root)
    if not layout.is_flat:
        raise UserError(
            f"'{root}' is a {layout.kind} layout with its own splits; "
            "data split needs a flat layout (images/ + masks/)"
        )
    if layout.errors:
        raise DataError(layout.errors)
    pairs = layout.splits["all"]
    out_dir = Path(out_dir) if out_dir else root / "splits"
    if folds is None:
        splits = ratio_split(pairs, seed=seed, ratios=ratios)
        name = f"{root.name}-seed{seed}"
        source = f"microsweep data split: seed {seed}, ratios {list(map(float, ratios))}"
        return [
            write_split_file(out_dir / f"{name}.yaml", splits, name=name, root=root, source=source)
        ]
    paths = []
    for i, splits in enumerate(kfold_splits(pairs, k=folds, seed=seed), 1):
        name = fold_name(root.name, seed=seed, fold=i, k=folds)
        source = f"microsweep data split: seed {seed}, fold {i} of {folds}"
        paths.append(
            write_split_file(out_dir / f"{name}.yaml", splits, name=name, root=root, source=source)
        )
    return paths


def fold_name(stem: str, *, seed: int, fold: int, k: int) -> str:
    """``NewAlloy-seed0-fold2of5``: the name (and file stem) of fold ``fold`` of ``k``."""
    return f"{stem}-seed{seed}-fold{fold}of{k}"


def fold_sets(split_dir: Path) -> dict[tuple[str, int, int], dict[int, Path]]:
    """The complete k-fold sets :func:`write_splits` wrote into ``split_dir``.

    Keys are ``(stem, seed, k)``; values map fold number (1..k) to its split file. A set with
    a missing fold file is left out (it would compare candidates on part of the images only).

    >>> fold_sets(Path("NewAlloy/splits"))
    {('NewAlloy', 0, 5): {1: PosixPath('NewAlloy/splits/NewAlloy-seed0-fold1of5.yaml'), ...}}
    """
    found: dict[tuple[str, int, int], dict[int, Path]] = {}
    for path in sorted(Path(split_dir).glob("*.yaml")) if Path(split_dir).is_dir() else []:
        m = FOLD_FILE.match(path.name)
        if m and 1 <= int(m["fold"]) <= int(m["k"]):
            key = (m["stem"], int(m["seed"]), int(m["k"]))
            found.setdefault(key, {})[int(m["fold"])] = path
    return {
        key: dict(sorted(files.items()))
        for key, files in sorted(found.items())
        if len(files) == key[2]
    }
