"""``recommend --folds``: which k-fold split files the confirm stage trains on.

``microsweep data split ROOT --folds K`` writes ``ROOT/splits/ROOT-seed0-fold{i}of{K}.yaml``
(fold ``i`` tests on part ``i`` and validates on part ``i+1``). ``recommend --folds`` confirms
every candidate once per fold instead of once per seed; ``--folds N`` uses the first N folds.

Example::

    folds = find_folds(exp, count=None)   # all folds; one-line UserError when there are none
    folds.files                           # {1: Path(".../NewAlloy-seed0-fold1of5.yaml"), ...}

Which fold set: the one the experiment's ``data.split_file`` belongs to, else the only one in
``ROOT/splits``; several sets and no hint is refused (naming them). Everything here runs before
Ray starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError

DEFAULT_K = 5  # what the refusal suggests (`data split --folds 5`)


@dataclass(frozen=True)
class FoldSet:
    """The fold split files a confirm stage uses (fold number -> file) and their set."""

    files: dict[int, Path]
    k: int  # folds in the set (files may hold fewer with --folds N)
    seed: int  # the shuffle seed of `data split`
    stem: str  # the dataset folder's name when `data split` ran

    @property
    def name(self) -> str:
        """``NewAlloy-seed0-fold*of5`` for progress lines."""
        return f"{self.stem}-seed{self.seed}-fold*of{self.k}"


def find_folds(exp: Any, *, count: int | None) -> FoldSet:
    """The first ``count`` folds (all when None) of the experiment's dataset's fold set."""
    from trainables.data.layout import discover
    from trainables.data.spec import DataSpec
    from trainables.data.splits import FOLD_FILE, fold_sets

    if count is not None and count < 2:
        raise UserError(f"--folds must be >= 2 (one fold has no spread), but got {count}")
    spec = exp.data
    if not isinstance(spec, DataSpec):
        raise UserError("--folds needs a segmentation experiment with a `data:` block; use --seeds")
    root = spec.root
    layout = discover(root)
    if not layout.is_flat:
        raise UserError(
            f"--folds needs a flat dataset (images/ + masks/), but '{root}' is a {layout.kind} "
            "layout with its own splits; use --seeds"
        )
    hint = spec.split_file if spec.split_file and FOLD_FILE.match(spec.split_file.name) else None
    split_dir = hint.parent if hint else root / "splits"
    make = f"microsweep data split {root} --folds {max(count or DEFAULT_K, 3)}"
    sets = fold_sets(split_dir)
    if not sets:
        raise UserError(
            f"--folds: '{split_dir}' holds no k-fold split files; make them with `{make}`"
        )
    key = _chosen(sets, hint, split_dir)
    files, k = sets[key], key[2]
    if count is not None and count > k:
        raise UserError(
            f"--folds {count}: the dataset has {k} folds ({files[1].name}, ...); "
            f"make {count} with `microsweep data split {root} --folds {count}`"
        )
    used = dict(list(files.items())[: count or k])
    return FoldSet(files=used, k=k, seed=key[1], stem=key[0])


def _chosen(
    sets: dict[tuple[str, int, int], dict[int, Path]], hint: Path | None, split_dir: Path
) -> tuple[str, int, int]:
    for key, files in sets.items():
        if hint is not None and hint.resolve() in {p.resolve() for p in files.values()}:
            return key
    if len(sets) == 1:
        return next(iter(sets))
    names = ", ".join(files[1].name for files in sets.values())
    raise UserError(
        f"--folds: '{split_dir}' holds {len(sets)} fold sets ({names}); set `data.split_file` "
        "to a fold file of the one to use (--set data.split_file=splits/FILE.yaml)"
    )


FOLDS_FILE = "folds.json"  # RUN/confirm/folds.json: the fold set the confirm stage trains on


def check_fold_set(run_dir: Any, fold_set: FoldSet) -> None:
    """Refuse a fold set other than the one this run folder's confirm stage trained on (its
    fold ``i`` rows would be ranked with another split's fold ``i``); more or fewer folds of
    the same set are fine (those done are reused)."""
    import json

    from analysis import results as R

    record = run_dir / R.CONFIRM / FOLDS_FILE
    if not record.is_file():
        return
    before = json.loads(record.read_bytes()).get("set")
    if before != fold_set.name:
        raise UserError(
            f"this run folder's confirm stage is over the fold set {before}, but --folds now "
            f"picks {fold_set.name}; set `data.split_file` to a fold file of {before}, or give "
            "the experiment a new name (--set name=)"
        )


def record_fold_set(run_dir: Any, fold_set: FoldSet) -> None:
    """Write ``RUN/confirm/folds.json`` (before the first fold stage trains)."""
    from analysis import results as R
    from core.storage import write_json

    files = {str(i): path.name for i, path in fold_set.files.items()}
    write_json(run_dir / R.CONFIRM / FOLDS_FILE, {"set": fold_set.name, "files": files})


def check_confirm_kind(trials: Any, *, folds: bool) -> None:
    """Refuse mixing a confirm stage over seeds with one over folds in one run folder."""
    from analysis import results as R

    if trials is None or R.STAGE not in trials.columns:
        return
    confirm = trials[trials[R.STAGE] == R.CONFIRM]
    if confirm.empty:
        return
    by_fold = R.FOLD in confirm.columns and bool(confirm[R.FOLD].notna().any())
    if by_fold != folds:
        done, asked = ("folds", "--seeds") if by_fold else ("seeds", "--folds")
        raise UserError(
            f"this run folder's confirm stage is over {done}; {asked} would mix both in one "
            "ranking: rerun with the same option, or give the experiment a new name (--set name=)"
        )
