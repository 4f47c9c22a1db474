"""Read run folders (local paths or pyarrow filesystem URIs) into pandas tables.

Only our own JSON and Parquet files are read; nothing is ever unpickled.

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
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis import results as R
from analysis.errors import ReportError

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


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in path:
        return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())
    try:
        return pafs.FileSystem.from_uri(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
        raise ReportError(f"cannot open '{path}': {str(err).splitlines()[0]}") from None


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.File


def _expand(fs: pafs.FileSystem, path: str, shown: str) -> list[str]:
    """The run folder itself, or the run folders directly inside ``path`` (sorted)."""
    if _exists(fs, f"{path}/{R.RUN_FILE}"):
        return [path]
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.Directory:
        raise ReportError(f"run folder '{shown}' does not exist; pass a folder a sweep wrote")
    subs = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    runs = sorted(
        s.path
        for s in subs
        if s.type == pafs.FileType.Directory and _exists(fs, f"{s.path}/{R.RUN_FILE}")
    )
    if not runs:
        raise ReportError(
            f"'{shown}' is not a run folder (no {R.RUN_FILE}); pass a folder a sweep wrote"
        )
    return runs


def _read_json(fs: pafs.FileSystem, path: str) -> dict:
    try:
        with fs.open_input_stream(path) as fh:
            data = json.loads(fh.read().decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path} is not valid JSON ({err}); re-run the sweep") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} must hold a JSON object, but got {type(data).__name__}")
    return data


def _read_parquet(fs: pafs.FileSystem, path: str, required: Sequence[str]) -> pd.DataFrame:
    try:
        table = pq.read_table(path, filesystem=fs)
    except (pa.ArrowInvalid, OSError) as err:
        raise ReportError(f"cannot read {path}: {str(err).splitlines()[0]}") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ReportError(f"{path} lacks column(s) {', '.join(missing)}; re-run the sweep")
    return table.to_pandas()


def _run_info(index: int, shown: str, meta: dict) -> RunInfo:
    def tup(key: str) -> tuple:
        value = meta.get(key)
        return tuple(value) if isinstance(value, list) else ()

    return RunInfo(
        index=index,
        path=shown,
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


def _optional(fs, path: str, columns: Sequence[str]) -> pd.DataFrame:
    if not _exists(fs, path):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return _read_parquet(fs, path, columns)


def _load_one(index: int, fs, path: str, shown: str) -> tuple[RunInfo, list[pd.DataFrame]]:
    meta = _read_json(fs, f"{path}/{R.RUN_FILE}")
    trials_path = f"{path}/{R.TRIALS_FILE}"
    if not _exists(fs, trials_path):
        raise ReportError(f"{shown} has no {R.TRIALS_FILE} yet; wait for the sweep's first trial")
    info = _run_info(index, shown, meta)
    trials = _read_parquet(fs, trials_path, REQUIRED_TRIAL_COLUMNS)
    for key, value in ((R.EXPERIMENT, info.experiment), (R.DATASET, info.dataset)):
        if key not in trials.columns:
            trials[key] = value
    epochs = _optional(fs, f"{path}/{R.EPOCHS_FILE}", (R.TRIAL, R.EPOCH, R.VAL_IOU))
    per_image = _optional(fs, f"{path}/{R.PER_IMAGE_FILE}", R.PER_IMAGE_COLUMNS)
    frames = [trials, epochs, per_image]
    for frame in frames:
        frame.insert(0, RUN, index)
    return info, frames


def _locations(paths: Iterable[str | Path]) -> list[tuple[pafs.FileSystem, str, str]]:
    out = []
    for raw in paths:
        shown = str(raw)
        fs, path = _filesystem(shown)
        path = path.rstrip("/")
        for run in _expand(fs, path, shown):
            label = shown if run == path else f"{shown.rstrip('/')}/{run.rsplit('/', 1)[-1]}"
            out.append((fs, run, label))
    if not out:
        raise ReportError("no run folders given; pass at least one folder a sweep wrote")
    return out


def load_results(paths: Iterable[str | Path]) -> Results:
    """Load every table of the given run folders (or folders of run folders)."""
    runs, parts = [], [[], [], []]
    for index, (fs, path, shown) in enumerate(_locations(paths)):
        info, frames = _load_one(index, fs, path, shown)
        runs.append(info)
        for bucket, frame in zip(parts, frames, strict=True):
            bucket.append(frame)
    trials, epochs, per_image = (pd.concat(p, ignore_index=True) for p in parts)
    return Results(tuple(runs), trials, epochs, per_image)


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """All trials of the given run folders in one table, labelled by experiment and dataset.

    Example: ``load_runs(["runs/super1", "runs/ebc1"]).groupby("dataset").test_iou.mean()``.
    """
    return load_results(paths).trials
