"""Synthetic cross-sections of an environmental barrier coating in the NASA ``EBC1`` format.

From the top: a bright porous topcoat, a wavy grey oxide band (class 1) with strings of
elongated pores, and a darker bond coat; thin near-vertical cracks (class 2) run through the
oxide and a little way into the topcoat. Images: ``OUT/{split}/NAME.tif`` (RGB uint8). Masks:
``OUT/{split}_annot/NAME.tif`` (L uint8 indices 0 background, 1 oxide, 2 crack).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.data.synth._common import (
    Imaging,
    Settings,
    finish,
    segmentation_jobs,
    smooth_noise,
    smooth_noise_1d,
)

DEFAULT_SIZE = 256
CLASSES = "ebc"
BACKGROUND, OXIDE, CRACK = 0, 1, 2


def draw_imaging(rng: np.random.Generator, *, shifted: bool) -> Imaging:
    """Per-image SEM settings; ``shifted`` is another microscope: inverted, zoomed out, noisy."""
    noise = rng.uniform(0.01, 0.03)
    return Imaging(
        blur=rng.uniform(0.4, 1.0),
        noise=noise * 3.0 if shifted else noise,
        contrast=rng.uniform(0.8, 1.2),
        brightness=rng.uniform(0.45, 0.6),
        invert=shifted,
        magnification=rng.uniform(0.6, 0.75) if shifted else 1.0,
    )


def _band(rng: np.random.Generator, size: int, mag: float) -> tuple[np.ndarray, np.ndarray]:
    """Top (rough) and bottom (smooth, wavy) row of the oxide band, per column."""
    centre = size * rng.uniform(0.4, 0.65)
    thickness = size * rng.uniform(0.08, 0.16) * mag
    wave = size * rng.uniform(0.01, 0.05) * smooth_noise_1d(rng, size, size / 4)
    rough = size * 0.01 * mag * smooth_noise_1d(rng, size, max(size / 80 * mag, 0.6))
    lumps = np.maximum(smooth_noise_1d(rng, size, max(size / 40 * mag, 0.6)), 0.0)
    top = centre + wave + rough + 0.03 * size * mag * lumps
    bottom = centre + wave + thickness + size * 0.005 * smooth_noise_1d(rng, size, size / 8)
    return top, np.maximum(bottom, top + max(3.0, 0.04 * size * mag))


def _cracks(
    rng: np.random.Generator, top: np.ndarray, bottom: np.ndarray, mag: float
) -> np.ndarray:
    """Thin near-vertical random-walk cracks spanning the band, some reaching into the topcoat."""
    size = top.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    half_width = max(0.5, 0.6 * size / 512 * mag)
    cracks = np.zeros((size, size), bool)
    for _ in range(rng.integers(2, 7)):
        column = int(rng.integers(0, size))
        steps = np.cumsum(rng.normal(0.0, 0.35, size))
        path = column + steps - steps[int(np.clip(top[column], 0, size - 1))]
        reach = rng.uniform(0.0, 0.4) * (bottom[column] - top[column])
        rows = (yy >= top[column] - reach) & (yy < bottom[column] - 1)
        cracks |= rows & (np.abs(xx - path[:, None]) <= half_width)
    return cracks


def _labels(rng: np.random.Generator, size: int, mag: float) -> tuple[np.ndarray, np.ndarray]:
    """Layer map (0 topcoat, 1 oxide, 2 bond coat) and the crack mask."""
    top, bottom = _band(rng, size, mag)
    rows = np.arange(size, dtype=np.float32)[:, None]
    layers = np.where(rows < top[None, :], 0, np.where(rows < bottom[None, :], 1, 2))
    return layers.astype(np.uint8), _cracks(rng, top, bottom, mag)


def _shade(rng: np.random.Generator, layers: np.ndarray, cracks: np.ndarray, mag: float):
    """Float image: porous bright topcoat, grey oxide with pore strings, darker bond coat."""
    shape, size = layers.shape, layers.shape[0]
    oxide_level = rng.uniform(0.4, 0.55)
    levels = np.array([rng.uniform(0.8, 0.95), oxide_level, oxide_level - rng.uniform(0.05, 0.15)])
    img = levels[layers].astype(np.float32)
    img += 0.03 * smooth_noise(rng, shape, max(size / 20 * mag, 1.0))
    pores = smooth_noise(rng, shape, max(size / 50 * mag, 1.0)) > rng.uniform(1.0, 1.6)
    img[pores & (layers == 0)] = rng.uniform(0.1, 0.3)
    strings = smooth_noise(rng, shape, (max(size / 150 * mag, 1.0), max(size / 25 * mag, 1.0)))
    img[(strings > rng.uniform(1.4, 2.0)) & (layers == 1)] -= 0.3
    specks = smooth_noise(rng, shape, max(size / 120 * mag, 1.0)) > 2.3
    img[specks & (layers == 2)] -= 0.25
    img[cracks] = 0.08
    return img


def render(rng: np.random.Generator, size: int, *, shifted: bool = False):
    """One cross-section: (grey HxW uint8, mask HxW uint8 with 0/1/2)."""
    imaging = draw_imaging(rng, shifted=shifted)
    layers, cracks = _labels(rng, size, imaging.magnification)
    mask = np.where(layers == 1, OXIDE, BACKGROUND).astype(np.uint8)
    mask[cracks] = CRACK
    grey = finish(_shade(rng, layers, cracks, imaging.magnification), rng, imaging)
    return grey, mask


def jobs(out: Path, settings: Settings) -> list:
    """The files to write, each as (relative paths, callable writing them)."""

    def draw(rng, size: int, shifted: bool):
        return render(rng, size, shifted=shifted)

    return segmentation_jobs(out, settings, draw, mask_suffix="", to_mask=lambda grey, mask: mask)
