"""Accuracy maps of the best model per level (e.g. per init source) from files in run folders.

Needs (see :mod:`analysis.results`): a ``checkpoint`` column in ``trials.parquet`` naming the
best checkpoint folder relative to the run folder, predictions as index-mask PNGs under
``CHECKPOINT/predictions/{split}/{image}.png`` and the ground truth under
``RUN/truth/{split}/{image}.png``. Whatever is absent is skipped: no maps, no error.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from analysis import results as R
from analysis.figures import accuracy_map
from analysis.load import RUN, Results
from analysis.tables import top_models
from core.storage import Location

Panel = tuple[str, str, np.ndarray]


def _read_png(loc: Location) -> np.ndarray | None:
    from PIL import Image

    if not loc.is_file():
        return None
    img = Image.open(io.BytesIO(loc.read_bytes()))
    return np.asarray(img.convert("L") if img.mode not in ("L", "P") else img)


def _images(res: Results, run: int, trial: str, split: str, limit: int) -> list[str]:
    per = res.per_image
    if per.empty:
        return []
    here = per[(per[RUN] == run) & (per[R.TRIAL] == trial) & (per[R.SPLIT] == split)]
    return sorted(here[R.IMAGE].astype(str).unique())[:limit]


def _panels_for(res: Results, best: pd.Series, factor: str, split: str, limit: int) -> list[Panel]:
    run = int(best[RUN])
    trials = res.trials
    row = trials[(trials[RUN] == run) & (trials[R.TRIAL] == best[R.TRIAL])].iloc[0]
    ckpt = row.get(R.CHECKPOINT)
    if not isinstance(ckpt, str) or not ckpt:
        return []
    root = res.runs[run].location
    # relative to the run folder as written by the sweep; absolute when it lay elsewhere
    ckpt_dir = Location.parse(ckpt) if ckpt.startswith("/") else root / ckpt
    out = []
    for image in _images(res, run, best[R.TRIAL], split, limit):
        truth = _read_png(root / R.TRUTH_DIR / split / f"{image}.png")
        pred = _read_png(ckpt_dir / R.PREDICTIONS_DIR / split / f"{image}.png")
        if truth is None or pred is None or truth.shape != pred.shape:
            continue
        label = f"{factor}={best[factor]} ({best[R.TEST_IOU]:.1f}%)"
        out.append((label, image, accuracy_map(truth, pred)))
    return out


def accuracy_panels(
    res: Results,
    *,
    factor: str = "init",
    across: str = R.DATASET,
    split: str = "test",
    images: int = 3,
) -> dict[str, list[Panel]]:
    """Per ``across`` value: accuracy maps of the top model (best val IoU) of every level of
    ``factor`` on up to ``images`` images of ``split``. Values without any map are left out."""
    if factor not in res.trials.columns or R.CHECKPOINT not in res.trials.columns:
        return {}
    top = top_models(res.trials, factor, across=across)
    out: dict[str, list[Panel]] = {}
    for group, best_rows in top.groupby(across, sort=False):
        panels = [
            p
            for _, best in best_rows.iterrows()
            for p in _panels_for(res, best, factor, split, images)
        ]
        if panels:
            out[str(group)] = panels
    return out
