"""A MicroNet-like image-folder classification set of procedural microstructures.

``OUT/{train,val}/<class>/NAME.png`` (or ``.tif``, uncompressed; 8-bit grey, like most
SEM/optical micrographs; the loaders replicate grey to 3 channels). Every class draws its feature
size, volume fraction, polarity and imaging per image, so classes overlap in brightness and
scale and must be told apart by morphology: learnable, but not trivially.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from trainables.data.synth._common import (
    SPLIT_CODES,
    Imaging,
    Settings,
    disks,
    finish,
    image_rng,
    save_image,
    smooth_noise,
)

DEFAULT_SIZE = 128
FORMATS = ("png", "tif")  # the files' suffix: save_image encodes by it
Field = Callable[[np.random.Generator, int, float], np.ndarray]


def _voronoi(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Label image of a Voronoi tessellation with cells about ``cell`` pixels across."""
    count = max(2, int(size * size / cell**2))
    seeds = np.ones((size, size), bool)
    seeds[rng.integers(0, size, count), rng.integers(0, size, count)] = False
    _, (iy, ix) = ndimage.distance_transform_edt(seeds, return_indices=True)
    return iy * size + ix


def grains(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Equiaxed grains: etched grain shades and dark boundaries."""
    labels = _voronoi(rng, size, rng.uniform(12, 30) * scale)
    shades = rng.uniform(0.5, 0.5 + rng.uniform(0.05, 0.3), size * size).astype(np.float32)
    img = shades[labels]
    edges = (np.diff(labels, axis=0, prepend=labels[:1]) != 0) | (
        np.diff(labels, axis=1, prepend=labels[:, :1]) != 0
    )
    img[edges] = 0.2
    return img


def lamellae(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Pearlite-like colonies of parallel plates, each colony its own orientation."""
    labels = _voronoi(rng, size, rng.uniform(30, 70) * scale)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi, size * size)[labels]
    period = rng.uniform(4, 9, size * size)[labels] * scale
    phase = rng.uniform(0, 2 * np.pi, size * size)[labels]
    wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + phase)
    return 0.3 + 0.4 * (wave > rng.uniform(-0.4, 0.4))


def dendrites(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Four-armed dendrites with periodic side branches, in a warped frame."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy += 3 * scale * smooth_noise(rng, (size, size), 12 * scale)
    xx += 3 * scale * smooth_noise(rng, (size, size), 12 * scale)
    warp = max(
        float(np.abs(yy - np.arange(size)[:, None]).max()),
        float(np.abs(xx - np.arange(size)).max()),
    )
    solid = np.zeros((size, size), bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx, tilt = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0, np.pi / 2)
        length, width, period = (
            size * rng.uniform(0.3, 0.7),
            2.0 * scale,
            rng.uniform(6, 11) * scale,
        )
        for arm in range(4):
            a = tilt + arm * np.pi / 2
            box = _arm_box(size, cy, cx, a, length, max(1.5 * width, 0.35 * length), warp)
            x, y = xx[box] - cx, yy[box] - cy
            along = x * np.cos(a) + y * np.sin(a)
            across = np.abs(-x * np.sin(a) + y * np.cos(a))
            inside = (along >= 0) & (along <= length)
            side = 0.35 * length * (1 - along / length)
            branch = (np.mod(along, period) < width) & (across < side)
            solid[box] |= inside & ((across < width * (1.5 - along / length)) | branch)
    return 0.3 + 0.4 * solid


def _arm_box(size: int, cy: float, cx: float, a: float, length: float, half: float, margin: float):
    """Slices of the pixels an arm (``length`` along angle ``a``, at most ``half`` to either
    side) can cover in a frame warped by up to ``margin`` pixels: the rest is never inside,
    so each arm costs its own area instead of the whole image's."""
    along, across = np.array([0, length, 0, length]), np.array([half, half, -half, -half])
    ys = cy + along * np.sin(a) + across * np.cos(a)
    xs = cx + along * np.cos(a) - across * np.sin(a)

    def span(v: np.ndarray) -> slice:
        return slice(int(max(0, v.min() - margin - 1)), int(min(size, v.max() + margin + 2)))

    return span(ys), span(xs)


def _particles(rng: np.random.Generator, size: int, radius: float, fraction: float, spread: float):
    """Boolean image of round particles covering about ``fraction`` of the area."""
    count = max(1, int(fraction * size * size / (np.pi * radius**2)))
    radii = np.maximum(1.0, radius * rng.lognormal(0.0, spread, count))
    return disks((size, size), rng.integers(0, size, count), rng.integers(0, size, count), radii)


def pores(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Dark irregular pores of widely varying size in a bright matrix."""
    solid = _particles(rng, size, rng.uniform(2.5, 6) * scale, rng.uniform(0.05, 0.2), 0.6)
    solid = ndimage.binary_opening(solid | (smooth_noise(rng, (size, size), 3 * scale) > 2.2))
    return 0.75 - 0.5 * solid


def precipitates_small(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Many fine, similar-sized particles."""
    solid = _particles(rng, size, rng.uniform(1.0, 2.2) * scale, rng.uniform(0.08, 0.25), 0.15)
    return 0.35 + 0.35 * solid


def precipitates_large(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Coarse blocky particles with a bright rim."""
    solid = _particles(rng, size, rng.uniform(6, 12) * scale, rng.uniform(0.15, 0.4), 0.2)
    soft = ndimage.gaussian_filter(solid.astype(np.float32), 1.0)
    return 0.35 + 0.3 * soft + 0.4 * soft * (1 - soft)


def fibres(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Long thin fibres, mostly aligned, in a matrix."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = rng.uniform(0, np.pi)
    img = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(10, 30)):
        a = base + rng.normal(0, 0.25)
        cy, cx, half = rng.uniform(0, size), rng.uniform(0, size), size * rng.uniform(0.2, 0.6)
        along = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        across = np.abs(-(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a))
        img = np.maximum(img, (across < rng.uniform(1.0, 2.5) * scale) & (np.abs(along) < half))
    return 0.3 + 0.4 * img


def bicontinuous(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Spinodal-like interpenetrating phases (a thresholded random field)."""
    field_ = smooth_noise(rng, (size, size), rng.uniform(4, 9) * scale)
    return 0.3 + 0.4 * (field_ > rng.uniform(-0.3, 0.3))


#: name -> field generator; the order fixes each class's random stream (append only).
CLASSES: dict[str, Field] = {
    "grains": grains,
    "lamellae": lamellae,
    "dendrites": dendrites,
    "pores": pores,
    "precipitates_small": precipitates_small,
    "precipitates_large": precipitates_large,
    "fibres": fibres,
    "bicontinuous": bicontinuous,
}


def render(rng: np.random.Generator, class_name: str, size: int) -> np.ndarray:
    """One grey uint8 image of ``class_name`` with random scale, polarity and imaging."""
    scale = size / 128 * rng.uniform(0.75, 1.35)
    imaging = Imaging(
        blur=rng.uniform(0.3, 1.2),
        noise=rng.uniform(0.01, 0.05),
        contrast=rng.uniform(0.5, 1.3),
        brightness=rng.uniform(0.35, 0.65),
        invert=bool(rng.random() < 0.3),
    )
    return finish(CLASSES[class_name](rng, size, scale), rng, imaging)


def jobs(out: Path, settings: Settings) -> list:
    """The files to write, each as (relative paths, callable writing them)."""
    names = settings.extra["classes"]
    return [
        _job(out, settings, split, name, i)
        for split, n in settings.counts.items()
        for name in names
        for i in range(n)
    ]


def _job(out: Path, settings: Settings, split: str, class_name: str, index: int):
    suffix = settings.extra.get("format", "png")
    rel = f"{split}/{class_name}/{class_name}_{index:04d}.{suffix}"
    code = list(CLASSES).index(class_name)

    def write() -> None:
        rng = image_rng(settings.seed, SPLIT_CODES[split], code, index)
        save_image(render(rng, class_name, settings.size), out / rel)

    return [rel], write
