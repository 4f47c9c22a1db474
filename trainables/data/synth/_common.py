"""Shared pieces of the synthetic generators: settings, noise fields, imaging, safe output.

Everything here is vectorised numpy/scipy.ndimage; each image draws from its own
``numpy.random.Generator`` seeded by ``(seed, split, index)`` so an image does not change when
the counts of other splits change.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from PIL import Image
from scipy import ndimage

from core import storage
from core.errors import UserError

SYNTH_FILE = "synth.json"
DATA_FILE = "data.yaml"
GENERATOR_VERSION = 2  # 2: OpenCV-upsampled noise, float32 detector noise, grey PNG
MIN_SIZE = 32
MAX_SIZE = 4096
#: Stable codes for the per-image random streams (never renumber: outputs would change).
SPLIT_CODES = {"train": 1, "val": 2, "test": 3, "different_test": 4}


@dataclass(frozen=True)
class Settings:
    """Validated options of one ``generate`` call."""

    kind: str
    seed: int
    size: int
    counts: dict[str, int]  # images per split (per class for micronet)
    different_test: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Imaging:
    """How one image is 'taken': optics and detector, drawn per image."""

    blur: float  # Gaussian sigma in pixels
    noise: float  # Gaussian noise std on a 0..1 scale
    contrast: float  # multiplies deviations from the mean
    brightness: float  # target mean on a 0..1 scale
    invert: bool = False
    magnification: float = 1.0  # < 1: features appear smaller (zoomed out)


def check_count(option: str, value: int | None, default: int) -> int:
    """``value`` (or ``default`` when None) as a positive int, else a one-line UserError."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"`{option}` must be an integer >= 1, but got {value!r}")
    return int(value)


def check_size(value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"`size` must be an integer number of pixels, but got {value!r}")
    if not MIN_SIZE <= value <= MAX_SIZE:
        raise UserError(f"`size` must be in [{MIN_SIZE}, {MAX_SIZE}] pixels, but got {value}")
    return int(value)


def image_rng(seed: int, *codes: int) -> np.random.Generator:
    """The random stream of one image; ``codes`` identify it (split, index, ...)."""
    return np.random.default_rng([seed, *codes])


# --- random fields ------------------------------------------------------------------------------


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], scale: float | tuple[float, float]
) -> np.ndarray:
    """Zero-mean, unit-std random field whose features are about ``scale`` pixels across.

    A tuple gives (rows, columns) scales for anisotropic fields. Built on a coarse grid and
    upsampled, so large scales cost no more than small ones.
    """
    sy, sx = (scale, scale) if np.isscalar(scale) else scale
    ky, kx = max(1, round(sy)), max(1, round(sx))
    coarse = rng.standard_normal((shape[0] // ky + 4, shape[1] // kx + 4)).astype(np.float32)
    coarse = ndimage.gaussian_filter(coarse, 0.7, mode="wrap")
    # bicubic upsampling by OpenCV: ~25x faster than ndimage.zoom's spline at 512 px, the
    # same pixel-centre alignment; the 2-cell margin keeps the border out of the crop
    up = (coarse.shape[1] * kx, coarse.shape[0] * ky)
    field_ = cv2.resize(coarse, up, interpolation=cv2.INTER_CUBIC)
    field_ = field_[2 * ky : 2 * ky + shape[0], 2 * kx : 2 * kx + shape[1]]
    return (field_ - field_.mean()) / (field_.std() + 1e-6)


def smooth_noise_1d(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """A unit-std random curve of length ``n`` with wiggles about ``scale`` samples long."""
    pad = int(3 * scale) + 1
    curve = ndimage.gaussian_filter1d(rng.standard_normal(n + 2 * pad), max(scale, 0.5))
    curve = curve[pad : pad + n]
    return (curve - curve.mean()) / (curve.std() + 1e-9)


def disks(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Boolean image of disks (centres ``ys, xs``) via one distance transform, no loops.

    Each pixel belongs to its nearest centre's disk, so overlapping disks share a straight
    boundary instead of merging fully (a fine look for touching particles).
    """
    if len(ys) == 0:
        return np.zeros(shape, bool)
    seeds = np.ones(shape, bool)
    seeds[ys, xs] = False
    radius_map = np.zeros(shape, np.float32)
    radius_map[ys, xs] = radii
    dist, (iy, ix) = ndimage.distance_transform_edt(seeds, return_indices=True)
    return dist <= radius_map[iy, ix]


def finish(img: np.ndarray, rng: np.random.Generator, imaging: Imaging) -> np.ndarray:
    """Blur, contrast/brightness, inversion and detector noise; float image -> uint8 grey."""
    out = ndimage.gaussian_filter(img.astype(np.float32), imaging.blur)
    if imaging.invert:
        out = 1.0 - out
    out = (out - out.mean()) * imaging.contrast + imaging.brightness
    out += imaging.noise * rng.standard_normal(out.shape, dtype=np.float32)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


# --- output -------------------------------------------------------------------------------------


def save_image(array: np.ndarray, path: Path) -> None:
    """Encode with Pillow (format from the suffix; TIFF uncompressed like the real data)."""
    buf = io.BytesIO()
    fmt = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG"}[path.suffix.lower()]
    Image.fromarray(array).save(buf, format=fmt)
    storage.write_bytes(path, buf.getvalue())


def write_data_yaml(out: Path, classes: str) -> None:
    """``OUT/data.yaml``: a ready ``data:`` block whose root is the folder itself."""
    block = {"data": {"root": ".", "classes": classes, "name": out.resolve().name}}
    storage.write_bytes(out / DATA_FILE, yaml.safe_dump(block, sort_keys=False).encode())


def synth_record(settings: Settings, files: list[str], *, complete: bool) -> dict[str, Any]:
    return {
        "kind": settings.kind,
        "seed": settings.seed,
        "size": settings.size,
        "counts": settings.counts,
        "different_test": settings.different_test,
        "version": GENERATOR_VERSION,
        **settings.extra,
        "complete": complete,
        "files": files,
    }


def read_synth_record(out: Path) -> dict[str, Any] | None:
    """The previous ``synth.json`` of ``out``, or None when absent or unreadable."""
    try:
        record = json.loads((out / SYNTH_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def prepare_out(out: Path, kind: str, *, overwrite: bool) -> None:
    """Make ``out`` ready: empty, or a previous synth output of ``kind`` (its files removed).

    A non-empty folder that is not such an output is refused unless ``overwrite``.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"synth output {out} is a file; give a folder path")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    record = read_synth_record(out)
    if record is not None and (record.get("kind") == kind or overwrite):
        remove_files(out, record.get("files", []))
        return
    if overwrite:
        return
    what = f"a synth '{record.get('kind')}' output" if record else "not a synth output"
    raise UserError(
        f"synth output {out} is not empty and {what}; choose an empty folder or pass --overwrite"
    )


def remove_files(out: Path, files: Iterable[str]) -> None:
    """Remove a previous run's files (only paths inside ``out``) and folders left empty."""
    root = out.resolve()
    parents: set[Path] = set()
    for rel in files:
        path = (root / str(rel)).resolve()
        if path.parent == root or root in path.parents:
            path.unlink(missing_ok=True)
            parents.update(p for p in path.parents if root in p.parents)
    for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


class Progress:
    """``synth superalloy: 5/14`` on stderr, updated in place (when enabled)."""

    def __init__(self, label: str, total: int, *, enabled: bool):
        self.label, self.total, self.enabled, self.done = label, total, enabled, 0

    def step(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        if sys.stderr.isatty():
            end = "\n" if self.done == self.total else ""
            print(f"\r{self.label}: {self.done}/{self.total}", end=end, file=sys.stderr, flush=True)
        elif self.done == self.total or self.done % max(1, self.total // 10) == 0:
            print(f"{self.label}: {self.done}/{self.total}", file=sys.stderr, flush=True)


def write_dataset(
    out: Path,
    settings: Settings,
    jobs: list[tuple[list[str], Callable[[], None]]],
    *,
    progress: bool,
) -> None:
    """Run ``jobs`` (relative paths planned, and a callable writing them) with a record.

    ``synth.json`` lists the planned files first (marked incomplete), so an interrupted run
    can be cleaned by the next one; it is rewritten as complete at the end.
    """
    planned = [rel for rels, _ in jobs for rel in rels]
    storage.write_json(out / SYNTH_FILE, synth_record(settings, planned, complete=False))
    bar = Progress(f"synth {settings.kind}", len(jobs), enabled=progress)
    for _ in _run_jobs([job for _, job in jobs]):
        bar.step()
    storage.write_json(out / SYNTH_FILE, synth_record(settings, planned, complete=True))


_JOBS: list[Callable[[], None]] = []  # the jobs forked worker processes run, by index
PARALLEL_FROM = 64  # fewer images are written faster without starting processes


def _run_job(index: int) -> None:
    _JOBS[index]()


def _run_jobs(jobs: list[Callable[[], None]]) -> Iterable[None]:
    """Run ``jobs`` (each with its own random stream: the output does not depend on the order)
    on every CPU through forked processes, which inherit the job closures; yields per job."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if len(jobs) < PARALLEL_FROM or (cpus or 1) < 2 or "fork" not in mp.get_all_start_methods():
        for job in jobs:
            job()
            yield None
        return
    _JOBS[:] = jobs
    try:
        with mp.get_context("fork").Pool(cpus) as pool:
            yield from pool.imap_unordered(_run_job, range(len(jobs)), chunksize=8)
    finally:
        _JOBS.clear()


@dataclass(frozen=True)
class Item:
    """One image to generate: where it goes and its random stream."""

    split: str
    index: int
    name: str
    rng: np.random.Generator
    shifted: bool  # imaging conditions of the `different_test` split


def segmentation_items(settings: Settings) -> list[Item]:
    """The images of a segmentation kind, split by split, named ``{split}_{index:03d}``."""
    return [
        Item(
            split,
            i,
            f"{split}_{i:03d}",
            image_rng(settings.seed, SPLIT_CODES[split], i),
            split == "different_test",
        )
        for split, n in settings.counts.items()
        for i in range(n)
    ]


Render = Callable[[np.random.Generator, int, bool], tuple[np.ndarray, np.ndarray]]


def segmentation_jobs(
    out: Path,
    settings: Settings,
    render: Render,
    *,
    mask_suffix: str,
    to_mask: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> list:
    """One job per image of a segmentation kind: (relative paths, callable writing them).

    The image is ``{split}/NAME.tif`` (RGB); the mask ``{split}_annot/NAME{mask_suffix}.tif``,
    made by ``to_mask(grey, labels)`` from what ``render(rng, size, shifted)`` drew.
    """

    def job(item: Item):
        image_rel = f"{item.split}/{item.name}.tif"
        mask_rel = f"{item.split}_annot/{item.name}{mask_suffix}.tif"

        def write() -> None:
            grey, labels = render(item.rng, settings.size, item.shifted)
            save_image(grey_to_rgb(grey), out / image_rel)
            save_image(to_mask(grey, labels), out / mask_rel)

        return [image_rel, mask_rel], write

    return [job(item) for item in segmentation_items(settings)]
