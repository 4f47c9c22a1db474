"""Read run folders (local paths or pyarrow filesystem URIs) into pandas tables.

Only our own JSON and Parquet files are read; nothing is ever unpickled. A location that cannot
be reached raises :class:`~core.errors.StorageError` (one line).

Example::

    from analysis import load_runs, load_results
    trials = load_runs(["runs/super1", "s3://bucket/runs/ebc1"])
    res = load_results(["runs/super1"])   # trials + epochs + per-image + run.json of each
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from analysis import results as R
from core.errors import ReportError
from core.storage import Location

RUN = "run"  # column added to every table: index of the run folder in the order given
REQUIRED_TRIAL_COLUMNS = (R.TRIAL, R.STATUS, R.SEED, R.VAL_IOU, R.TEST_IOU)


@dataclass(frozen=True)
class RunInfo:
    """One run folder's ``run.json``, plus where it was read from."""

    index: int
    path: str
    experiment: str
    dataset: str
    kind: str
    factors: tuple[str, ...]
    test_splits: tuple[str, ...]
    classes: tuple[str, ...]
    metric: str
    rungs: tuple[int, ...] | None
    seeds: tuple[int, ...] | None
    location: Location  # where its files are read from (``path`` is how it is shown)


@dataclass(frozen=True)
class Results:
    """Every table of the runs, concatenated; each row carries its run's ``RUN`` index."""

    runs: tuple[RunInfo, ...]
    trials: pd.DataFrame
    epochs: pd.DataFrame
    per_image: pd.DataFrame

    @property
    def factors(self) -> tuple[str, ...]:
        """Factor names of all runs, in first-seen order (``seed`` is never a factor)."""
        seen: dict[str, None] = {}
        for run in self.runs:
            seen.update(dict.fromkeys(f for f in run.factors if f != R.SEED))
        return tuple(seen)


def _expand(root: Location) -> list[Location]:
    """The run folder itself, or the run folders directly inside ``root`` (sorted)."""
    if (root / R.RUN_FILE).is_file():
        return [root]
    if not root.is_dir():
        raise ReportError(f"run folder '{root}' does not exist; pass a folder a sweep wrote")
    runs = [sub for sub in root.glob("*") if (sub / R.RUN_FILE).is_file()]
    if not runs:
        raise ReportError(
            f"'{root}' is not a run folder (no {R.RUN_FILE}); pass a folder a sweep wrote"
        )
    return runs


def _read_json(loc: Location) -> dict:
    try:
        data = json.loads(loc.read_bytes().decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{loc} is not valid JSON ({err}); re-run the sweep") from None
    if not isinstance(data, dict):
        raise ReportError(f"{loc} must hold a JSON object, but got {type(data).__name__}")
    return data


def _read_parquet(loc: Location, required: Sequence[str]) -> pd.DataFrame:
    try:
        table = loc.read_table()
    except pa.ArrowInvalid as err:
        raise ReportError(f"cannot read {loc}: {str(err).splitlines()[0]}") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ReportError(f"{loc} lacks column(s) {', '.join(missing)}; re-run the sweep")
    return table.to_pandas()


def _run_info(index: int, run: Location, meta: dict) -> RunInfo:
    def tup(key: str) -> tuple:
        value = meta.get(key)
        return tuple(value) if isinstance(value, list) else ()

    return RunInfo(
        index=index,
        path=str(run),
        location=run,
        experiment=str(meta.get("experiment") or ""),
        dataset=str(meta.get("dataset") or ""),
        kind=str(meta.get("kind", "segmentation")),
        factors=tuple(str(f) for f in tup("factors")),
        test_splits=tup("test_splits") or ("test",),
        classes=tup("classes"),
        metric=str(meta.get("metric", R.VAL_IOU)),
        rungs=tuple(int(r) for r in tup(R.RUNGS)) or None,
        seeds=tuple(int(s) for s in tup(R.SEEDS)) or None,
    )


def _optional(loc: Location, columns: Sequence[str]) -> pd.DataFrame:
    if not loc.is_file():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return _read_parquet(loc, columns)


def _load_one(index: int, run: Location) -> tuple[RunInfo, list[pd.DataFrame]]:
    meta = _read_json(run / R.RUN_FILE)
    if not (run / R.TRIALS_FILE).is_file():
        raise ReportError(f"{run} has no {R.TRIALS_FILE} yet; wait for the sweep's first trial")
    info = _run_info(index, run, meta)
    trials = _read_parquet(run / R.TRIALS_FILE, REQUIRED_TRIAL_COLUMNS)
    for key, value in ((R.EXPERIMENT, info.experiment), (R.DATASET, info.dataset)):
        if key not in trials.columns:
            trials[key] = value
    epochs = _optional(run / R.EPOCHS_FILE, (R.TRIAL, R.EPOCH, R.VAL_IOU))
    per_image = _optional(run / R.PER_IMAGE_FILE, R.PER_IMAGE_COLUMNS)
    frames = [trials, epochs, per_image]
    for frame in frames:
        frame.insert(0, RUN, index)
    return info, frames


def _locations(paths: Iterable[str | Path | Location]) -> list[Location]:
    runs = [run for raw in paths for run in _expand(Location.parse(raw))]
    if not runs:
        raise ReportError("no run folders given; pass at least one folder a sweep wrote")
    return runs


def load_results(paths: Iterable[str | Path | Location]) -> Results:
    """Load every table of the given run folders (or folders of run folders)."""
    runs, parts = [], [[], [], []]
    for index, run in enumerate(_locations(paths)):
        info, frames = _load_one(index, run)
        runs.append(info)
        for bucket, frame in zip(parts, frames, strict=True):
            bucket.append(frame)
    trials, epochs, per_image = (pd.concat(p, ignore_index=True) for p in parts)
    return Results(tuple(runs), trials, epochs, per_image)


def load_runs(paths: Iterable[str | Path | Location]) -> pd.DataFrame:
    """All trials of the given run folders in one table, labelled by experiment and dataset.

    Example: ``load_runs(["runs/super1", "runs/ebc1"]).groupby("dataset").test_iou.mean()``.
    """
    return load_results(paths).trials
