"""Realistic fake run folders, for tests, benchmarks and trying reports without a sweep.

``make_fake_run(out, experiment="demo", dataset="Super-1", factors={...})`` writes ``run.json``,
``trials.parquet``, ``epochs.parquet`` and ``per_image.parquet`` in the schema of
:mod:`analysis.results`: one trial per factor combination and seed, with learning curves that
rise towards a final IoU depending on the factor levels, some trials stopped by ASHA at a rung,
some diverged, errored or infeasible. With ``predictions=True`` it also writes small index-mask
PNGs (``truth/`` and each completed trial's ``CHECKPOINT/predictions/``) for accuracy maps.

With ``confirm_top=K`` the run also holds a confirm stage as ``microsweep recommend`` writes it:
the top K configurations of the search (``analysis.recommend.candidates``) trained again to
``max_epochs`` with each of ``confirm_seeds``, and a ``stage`` column (``search`` | ``confirm``).
``planted={"encoder": "resnet50"}`` adds ``planted_gain`` to the IoU of the configurations
matching it; ``effects`` fixes factor-level effects and ``epoch_seconds`` the seconds per epoch
(summed over the factors' levels) instead of the made-up defaults.

The numbers are made up; only the shapes and the schema are real.
"""

from __future__ import annotations

import io
import itertools
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from analysis import results as R
from core import storage

# Init sources ordered as the paper found them (worst to best), to make the fake effects plausible.
_INIT_EFFECT = {"none": -0.12, "imagenet": 0.0, "micronet": 0.03, "image-micronet": 0.035}


@dataclass(frozen=True)
class FakeRunSpec:
    """What to fake. ``factors`` maps a factor name to its levels (strings or numbers)."""

    experiment: str = "demo"
    dataset: str = "Super-1"
    factors: Mapping[str, Sequence] = field(
        default_factory=lambda: {
            "init": ["imagenet", "micronet"],
            "decoder": ["Unet", "FPN"],
            "encoder": ["resnet18", "resnet50"],
        }
    )
    seeds: Sequence[int] = (0, 1, 2)
    max_epochs: int = 20
    rungs: Sequence[int] = (2, 6)
    base_iou: float = 0.80
    noise: float = 0.04
    stop_fraction: float = 0.25
    diverge_fraction: float = 0.03
    error_fraction: float = 0.02
    infeasible_fraction: float = 0.0
    test_splits: Sequence[str] = ("test",)
    classes: Sequence[str] = ("matrix", "precipitate")
    images_per_split: int = 3
    predictions: bool = False
    image_size: int = 48
    seed: int = 0
    full_epochs: bool = False  # every trained trial reports max_epochs epochs (load tests)
    effects: Mapping[str, Mapping[object, float]] = field(default_factory=dict)
    epoch_seconds: Mapping[str, Mapping[object, float]] = field(default_factory=dict)
    planted: Mapping[str, object] | None = None
    planted_gain: float = 0.1
    confirm_top: int = 0  # configurations retrained in a confirm stage (0: no confirm stage)
    confirm_seeds: Sequence[int] = (100, 101, 102)


def _level_effect(factor: str, level: object, spec: FakeRunSpec) -> float:
    """A fixed, deterministic effect per factor level (no Python hash randomisation)."""
    if level in spec.effects.get(factor, {}):
        return float(spec.effects[factor][level])
    if factor == "init" and level in _INIT_EFFECT:
        return _INIT_EFFECT[str(level)]
    if factor == "bce_weight":
        return -0.08 * (float(level) - 0.6) ** 2  # a response with an optimum near 0.6
    crc = zlib.crc32(f"{factor}={level}".encode())
    return (crc % 1000) / 1000 * 0.06 - 0.03


def _grid(spec: FakeRunSpec) -> list[dict]:
    names = list(spec.factors)
    rows = []
    for combo in itertools.product(*(spec.factors[n] for n in names)):
        for seed in spec.seeds:
            rows.append({**dict(zip(names, combo, strict=True)), R.SEED: int(seed)})
    return rows


def _statuses(rng: np.random.Generator, n: int, spec: FakeRunSpec) -> np.ndarray:
    p_other = [
        spec.stop_fraction,
        spec.diverge_fraction,
        spec.error_fraction,
        spec.infeasible_fraction,
    ]
    probs = [1.0 - sum(p_other), *p_other]
    return rng.choice(np.array(R.STATUSES, dtype=object), size=n, p=probs)


def _effect(spec: FakeRunSpec, row: Mapping[str, object]) -> float:
    gain = spec.planted is not None and all(row.get(k) == v for k, v in spec.planted.items())
    return sum(_level_effect(f, row[f], spec) for f in spec.factors) + spec.planted_gain * gain


def _epochs_trained(rng, statuses: np.ndarray, spec: FakeRunSpec, full: bool) -> np.ndarray:
    n = len(statuses)
    epochs = rng.integers(max(1, spec.max_epochs // 2), spec.max_epochs + 1, size=n)
    rungs = np.asarray(spec.rungs or [max(1, spec.max_epochs // 4)])
    stopped = statuses == R.STOPPED
    epochs[stopped] = rng.choice(rungs, size=int(stopped.sum()))
    broken = np.isin(statuses, [R.DIVERGED, R.ERRORED])
    epochs[broken] = rng.integers(1, max(2, spec.max_epochs // 3), size=int(broken.sum()))
    if full:
        epochs[:] = spec.max_epochs
    epochs[statuses == R.INFEASIBLE] = 0
    return epochs


def _curves(rng, final: np.ndarray, epochs: np.ndarray, spec: FakeRunSpec):
    """Val IoU per epoch (trials × max_epochs), rising towards ``final`` with noise."""
    t = np.arange(1, spec.max_epochs + 1)[None, :]
    tau = rng.uniform(1.5, 5.0, size=(len(final), 1))
    val = final[:, None] * (1 - 0.7 * np.exp(-t / tau))
    val += rng.normal(0, 0.01, size=val.shape)
    return np.clip(val, 0.0, 1.0), t


def _trial_table(spec: FakeRunSpec, rng: np.random.Generator, grid: list[dict], stage: str):
    n = len(grid)
    effect = np.array([_effect(spec, row) for row in grid])
    final = np.clip(spec.base_iou + effect + rng.normal(0, spec.noise, n), 0.02, 0.995)
    statuses = _statuses(rng, n, spec)
    if stage == R.CONFIRM:  # trained to the full budget, no scheduler, nothing broke
        statuses[:] = R.COMPLETED
    epochs = _epochs_trained(rng, statuses, spec, spec.full_epochs or stage == R.CONFIRM)
    val, t = _curves(rng, final, epochs, spec)
    trained = t <= epochs[:, None]
    masked = np.where(trained, val, -np.inf)
    best_idx = masked.argmax(axis=1)
    has_val = np.isin(statuses, [R.COMPLETED, R.STOPPED]) & (epochs > 0)
    best_val = np.where(has_val, masked.max(axis=1), np.nan)
    done = statuses == R.COMPLETED
    test = np.where(done, np.clip(best_val + rng.normal(0, spec.noise / 2, n), 0, 1), np.nan)
    cols: dict[str, object] = {
        R.TRIAL: [f"{stage if stage == R.CONFIRM else 'trial'}_{i:05d}" for i in range(n)],
        R.EXPERIMENT: [spec.experiment] * n,
        R.DATASET: [spec.dataset] * n,
    }
    for name in spec.factors:
        cols[name] = [row[name] for row in grid]
    cols[R.SEED] = [row[R.SEED] for row in grid]
    cols[R.STATUS] = statuses.tolist()
    cols[R.EPOCHS] = epochs.astype(np.int64)
    cols[R.BEST_EPOCH] = np.where(has_val, best_idx + 1, 0).astype(np.int64)
    cols[R.VAL_IOU] = best_val
    cols[R.TEST_IOU] = test
    for split in spec.test_splits:
        shift = 0.0 if split == "test" else -0.1
        cols[R.test_iou_column(split)] = np.clip(test + shift, 0, 1)
        for k, cls in enumerate(spec.classes):
            cols[R.class_iou_column(split, cls)] = np.clip(test + shift - 0.05 * k, 0, 1)
    cols[R.WALL_S] = epochs * rng.uniform(5, 15, n)
    if spec.epoch_seconds:
        cols[R.WALL_S] = epochs * np.array([_seconds(spec, row) for row in grid])
    cols[R.CPU] = np.full(n, 1.0)
    cols[R.GPU] = np.zeros(n)
    cols[R.NODE] = ["127.0.0.1"] * n
    errors = {R.DIVERGED: "loss is nan at epoch", R.ERRORED: "RuntimeError: out of memory"}
    errors[R.INFEASIBLE] = "decoder does not support this encoder"
    cols[R.ERROR] = [errors.get(s) for s in statuses]
    cols[R.CHECKPOINT] = [
        f"checkpoints/{name}" if d else None for name, d in zip(cols[R.TRIAL], done, strict=True)
    ]
    if spec.confirm_top:
        cols[R.STAGE] = [stage] * n
    return pa.table(cols), val, trained


def _seconds(spec: FakeRunSpec, row: Mapping[str, object]) -> float:
    return sum(float(spec.epoch_seconds.get(f, {}).get(row[f], 0.0)) for f in spec.factors)


def _with_confirm(spec: FakeRunSpec, rng, search: tuple) -> tuple:
    """The search stage's tables plus a confirm stage of its top ``confirm_top`` configs."""
    from analysis.recommend import candidates

    trials, val, trained = search
    picks = candidates(trials.to_pandas(), list(spec.factors), top=spec.confirm_top)
    grid = [{**c.config, R.SEED: int(s)} for c in picks for s in spec.confirm_seeds]
    more, val2, trained2 = _trial_table(spec, rng, grid, R.CONFIRM)
    return (
        pa.concat_tables([trials, more.select(trials.column_names).cast(trials.schema)]),
        np.concatenate([val, val2]),
        np.concatenate([trained, trained2]),
    )


def _epoch_table(trials: pa.Table, val: np.ndarray, trained: np.ndarray, rng) -> pa.Table:
    rows, cols = np.nonzero(trained)
    names = np.asarray(trials.column(R.TRIAL).to_pylist(), dtype=object)
    v = val[rows, cols]
    loss = 1.0 - v + rng.normal(0, 0.01, len(v))
    return pa.table(
        {
            R.TRIAL: names[rows].tolist(),
            R.EPOCH: (cols + 1).astype(np.int64),
            R.TRAIN_LOSS: loss * 0.9,
            R.VAL_LOSS: loss,
            R.VAL_IOU: v,
            R.LR: 1e-3 * 0.95**cols,
            R.WALL_S: (cols + 1) * 10.0,
        }
    )


def _image_names(spec: FakeRunSpec) -> list[str]:
    return [f"img#{i:02d}" for i in range(spec.images_per_split)]


def _per_image_table(trials: pa.Table, spec: FakeRunSpec, rng) -> pa.Table:
    out: dict[str, list] = {R.TRIAL: [], R.SPLIT: [], R.IMAGE: [], R.IOU: []}
    done = [s == R.COMPLETED for s in trials.column(R.STATUS).to_pylist()]
    for name, ok, base in zip(
        trials.column(R.TRIAL).to_pylist(), done, trials.column(R.TEST_IOU).to_pylist(), strict=True
    ):
        if not ok:
            continue
        for split in spec.test_splits:
            for image in _image_names(spec):
                out[R.TRIAL].append(name)
                out[R.SPLIT].append(split)
                out[R.IMAGE].append(image)
                out[R.IOU].append(float(np.clip(base + rng.normal(0, 0.03), 0, 1)))
    return pa.table(out)


def _png(mask: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _write_masks(run: Path, trials: pa.Table, spec: FakeRunSpec, rng) -> None:
    size = spec.image_size
    yy, xx = np.mgrid[:size, :size]
    truth = {}
    for split in spec.test_splits:
        for image in _image_names(spec):
            mask = np.zeros((size, size), np.uint8)
            for _ in range(4):
                cy, cx, r = [*rng.integers(0, size, 2).tolist(), int(rng.integers(3, size // 4))]
                cls = int(rng.integers(1, len(spec.classes)))
                mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = cls
            truth[split, image] = mask
            storage.write_bytes(run / R.TRUTH_DIR / split / f"{image}.png", _png(mask))
    ckpts = trials.column(R.CHECKPOINT).to_pylist()
    for ckpt, iou in zip(ckpts, trials.column(R.TEST_IOU).to_pylist(), strict=True):
        if ckpt is None:
            continue
        for (split, image), mask in truth.items():
            flip = rng.random(mask.shape) < (1 - iou) * 0.3
            pred = np.where(flip, (mask + 1) % len(spec.classes), mask)
            path = run / ckpt / R.PREDICTIONS_DIR / split / f"{image}.png"
            storage.write_bytes(path, _png(pred))


def make_fake_run(out: str | Path, spec: FakeRunSpec | None = None, **overrides) -> Path:
    """Write a fake run folder at ``out`` and return its path.

    Example: ``make_fake_run(tmp / "run", FakeRunSpec(dataset="EBC-1"), predictions=True)``.
    """
    spec = spec or FakeRunSpec()
    if overrides:
        spec = FakeRunSpec(**{**spec.__dict__, **overrides})
    run = Path(out)
    rng = np.random.default_rng(spec.seed)
    tables = _trial_table(spec, rng, _grid(spec), R.SEARCH)
    if spec.confirm_top:
        tables = _with_confirm(spec, rng, tables)
    trials, val, trained = tables
    meta = {
        "schema": R.SCHEMA_VERSION,
        "experiment": spec.experiment,
        "dataset": spec.dataset,
        "kind": "segmentation",
        "factors": list(spec.factors),
        "test_splits": list(spec.test_splits),
        "classes": list(spec.classes),
        "metric": R.VAL_IOU,
        R.RUNGS: list(spec.rungs),
        R.SEEDS: list(spec.seeds),
    }
    storage.write_json(run / R.RUN_FILE, meta)
    storage.write_parquet(run / R.TRIALS_FILE, trials)
    storage.write_parquet(run / R.EPOCHS_FILE, _epoch_table(trials, val, trained, rng))
    storage.write_parquet(run / R.PER_IMAGE_FILE, _per_image_table(trials, spec, rng))
    if spec.predictions:
        _write_masks(run, trials, spec, rng)
    return run
