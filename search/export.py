"""Export trials of a run folder as a model package (:mod:`trainables.package`).

Example::

    from search.export import export_model
    export_model("runs/super1")                                   # best completed trial
    export_model("runs/super1", ["t3", "t7", "t9"], out="m", ensemble=True)

The weights come from ``model.safetensors.zst`` and ``config.json`` in each trial's final checkpoint
(``trials.parquet[checkpoint]``, written by the segmentation trainable), the classes and dataset
hash from ``run.json``: nothing is unpickled and ``state.pt`` is not needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis import results as R
from core.errors import UserError, unknown_name
from core.storage import Location
from trainables import package as P
from trainables.checkpoint import CONFIG_FILE, MODEL_FILE, MODEL_FILES, read_model

MODEL_DIR = "model"  # default package folder inside the run folder
SAME_MODEL = ("encoder", "decoder")


def export_model(
    run_dir: str | Path | Location,
    trials: Sequence[str] | None = None,
    out: str | Path | None = None,
    *,
    ensemble: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a package of ``trials`` (default: the best completed by val IoU) to ``out``.

    Without ``ensemble`` the best of ``trials`` by val IoU is exported; with it, all of them
    (one tensor set each; predictions average their probabilities). ``out`` defaults to
    ``RUN/model`` (a local run folder only). Returns the package folder.
    """
    run = Location.parse(run_dir)
    info = _read_run_json(run)
    rows = _read_trials(run)
    chosen = _choose(rows, trials, ensemble=ensemble, run=run)
    target = _target(run, out, overwrite=overwrite)
    members, configs = [], []
    for row in chosen:
        weights, config = _read_member(run, row)
        members.append(weights)
        configs.append(config)
    for key in SAME_MODEL:
        if len({c.get(key) for c in configs}) > 1:
            raise UserError(f"an ensemble needs one {key} for all members, but got "
                            f"{sorted({str(c.get(key)) for c in configs})}")  # fmt: skip
    meta = package_meta(info, chosen, configs, run=run)
    return P.write_package(target, members=members, meta=meta)


def _read_run_json(run: Location) -> dict[str, Any]:
    path = run / R.RUN_FILE
    if not path.is_file():
        raise UserError(f"{run}: not a run folder (no {R.RUN_FILE}); give a sweep's run folder")
    info = json.loads(path.read_bytes())
    if info.get("kind") != "segmentation":
        raise UserError(f"{run}: only segmentation runs can be exported, not {info.get('kind')}")
    return info


def _read_trials(run: Location) -> list[dict[str, Any]]:
    path = run / R.TRIALS_FILE
    if not path.is_file():
        raise UserError(f"{run}: no {R.TRIALS_FILE} yet; wait until a trial has ended")
    return path.read_table().to_pylist()


def _val(row: dict[str, Any]) -> float:
    value = row.get(R.VAL_IOU)
    return value if isinstance(value, float) and math.isfinite(value) else -math.inf


def _choose(
    rows: list[dict[str, Any]], trials: Sequence[str] | None, *, ensemble: bool, run: Location
) -> list[dict[str, Any]]:
    by_name = {r[R.TRIAL]: r for r in rows}
    if trials:
        for name in trials:
            if name not in by_name:
                raise unknown_name(f"trial in {run}", name, by_name, hint="see trials.parquet")
        picked = [by_name[n] for n in dict.fromkeys(trials)]
    else:
        picked = [r for r in rows if r.get(R.STATUS) == R.COMPLETED]
        if not picked:
            raise UserError(f"{run}: no completed trial to export; name one: export RUN TRIAL")
    picked = sorted(picked, key=_val, reverse=True)
    return picked if ensemble else picked[:1]


def _target(run: Location, out: str | Path | None, *, overwrite: bool) -> Path:
    if out is None:
        if run.is_uri:
            raise UserError(f"{run} is not a local folder; give --out DIR for the package")
        out = Path(run.text) / MODEL_DIR
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a file is there; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out {out} is not empty; pass --overwrite or choose another folder")
    return out


def _read_member(run: Location, row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    name, folder = row[R.TRIAL], row.get(R.CHECKPOINT)
    if not folder:
        raise UserError(f"trial {name!r} ({row.get(R.STATUS)}) has no checkpoint in {run}")
    ckpt = Location.parse(folder) if Location.parse(folder).is_uri else run / folder
    weights = next((ckpt / f for f in MODEL_FILES if (ckpt / f).is_file()), None)
    config = ckpt / CONFIG_FILE
    if weights is None or not config.is_file():
        raise UserError(
            f"trial {name!r} ({row.get(R.STATUS)}): its checkpoint {ckpt} holds no "
            f"{MODEL_FILE}/{CONFIG_FILE}; only trials that ran to their end can be exported"
        )
    return read_model(weights.read_bytes(), source=weights), json.loads(config.read_bytes())


def package_meta(
    info: dict[str, Any],
    rows: list[dict[str, Any]],
    configs: list[dict[str, Any]],
    *,
    run: Location,
) -> dict[str, Any]:
    """``model.json``'s content (less what :func:`trainables.package.write_package` adds)."""
    first = configs[0]
    return {
        "encoder": first["encoder"],
        "decoder": first["decoder"],
        "classes": _classes(info),
        "class_map": (info.get("class_map") or {}).get("name"),
        "tile": first.get("eval_tile", 1024),
        "overlap": first.get("eval_overlap", 128),
        "batch": first.get("eval_batch", 4),
        "provenance": {
            "run": str(run),
            "experiment": info.get("experiment"),
            "dataset": info.get("dataset"),
            # the split the members trained on (None: a fold ensemble, each names its own)
            "dataset_sha256": _common({_member_hash(row, info) for row in rows}),
            "created": info.get("created"),
            "members": [
                {
                    "trial": row[R.TRIAL],
                    "seed": row.get(R.SEED),
                    "fold": row.get(R.FOLD),  # recommend --folds: the split it trained on
                    "dataset_sha256": _member_hash(row, info),
                    "val_iou": row.get(R.VAL_IOU),
                    "test_iou": row.get(R.TEST_IOU),
                    "best_epoch": row.get(R.BEST_EPOCH),
                    "config": config,
                }
                for row, config in zip(rows, configs, strict=True)
            ],
        },
    }


def _member_hash(row: dict[str, Any], info: dict[str, Any]) -> str | None:
    """The hash of the split a member trained on (rows from before it was recorded: the
    search's, from run.json)."""
    return row.get(R.DATASET_SHA256) or info.get(R.DATASET_SHA256)


def _common(values: set[Any]) -> Any:
    return next(iter(values)) if len(values) == 1 else None


def _classes(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The class map from run.json; runs from before it was recorded get names and palette."""
    record = info.get("class_map")
    if record:
        return list(record["classes"])
    from trainables.data.fingerprint import PALETTE

    return [
        {"name": n, "index": i, "values": None, "colour": list(PALETTE[i % len(PALETTE)])}
        for i, n in enumerate(info.get("classes", []))
    ]
