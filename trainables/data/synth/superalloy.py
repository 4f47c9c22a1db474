"""Synthetic Ni-superalloy SEM micrographs in the NASA ``Super1`` format.

A gamma matrix holds large secondary gamma-prime precipitates (rounded cuboids, roughly on a
rotated grid with jitter) and small tertiary precipitates in the wider matrix channels.
Images: ``OUT/{split}/NAME.tif`` (RGB uint8). Masks: ``OUT/{split}_annot/NAME_mask.tif``, RGBA
overlays: pure blue = secondary, pure red = tertiary, every other pixel the image's grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from trainables.data.synth._common import (
    Imaging,
    Settings,
    disks,
    finish,
    segmentation_jobs,
    smooth_noise,
)

DEFAULT_SIZE = 256
CLASSES = "superalloy"
MATRIX, SECONDARY, TERTIARY = 0, 1, 2
BLUE = (0, 0, 255, 255)
RED = (255, 0, 0, 255)


def draw_imaging(rng: np.random.Generator, *, shifted: bool) -> Imaging:
    """Per-image SEM settings; ``shifted`` is another microscope: inverted, zoomed out, noisy."""
    noise = rng.uniform(0.008, 0.02)
    return Imaging(
        blur=rng.uniform(0.5, 1.2),
        noise=noise * 3.0 if shifted else noise,
        contrast=rng.uniform(0.7, 1.3),
        brightness=rng.uniform(0.45, 0.72),
        invert=shifted,
        magnification=rng.uniform(0.6, 0.75) if shifted else 1.0,
    )


def _cell_params(rng: np.random.Generator, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Random shape of the precipitate of every grid cell (some cells stay empty)."""
    return {
        "jitter_u": rng.uniform(-0.18, 0.18, shape),
        "jitter_v": rng.uniform(-0.18, 0.18, shape),
        "a": rng.uniform(0.29, 0.48, shape),
        "b": rng.uniform(0.29, 0.48, shape),
        "p": rng.uniform(2.2, 4.0, shape),
        "phi": rng.uniform(-0.3, 0.3, shape),
        "present": rng.random(shape) < 0.92,
    }


def _superellipse_distance(rng: np.random.Generator, size: int, spacing: float) -> np.ndarray:
    """Per pixel, the smallest superellipse 'radius' (<1 inside) over the 3x3 nearby cells."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(-0.4, 0.4)
    u = xx * np.cos(theta) + yy * np.sin(theta) + rng.uniform(0, spacing)
    v = -xx * np.sin(theta) + yy * np.cos(theta) + rng.uniform(0, spacing)
    iu, iv = np.floor(u / spacing).astype(int), np.floor(v / spacing).astype(int)
    u0, v0 = iu.min() - 1, iv.min() - 1
    cells = _cell_params(rng, (iu.max() - u0 + 2, iv.max() - v0 + 2))
    best = np.full((size, size), np.inf, np.float32)
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            ci, cj = iu - u0 + du, iv - v0 + dv
            dx = u - (iu + du + 0.5 + cells["jitter_u"][ci, cj]) * spacing
            dy = v - (iv + dv + 0.5 + cells["jitter_v"][ci, cj]) * spacing
            phi = cells["phi"][ci, cj]
            x = np.abs(dx * np.cos(phi) + dy * np.sin(phi)) / (cells["a"][ci, cj] * spacing)
            y = np.abs(-dx * np.sin(phi) + dy * np.cos(phi)) / (cells["b"][ci, cj] * spacing)
            p = cells["p"][ci, cj]
            dist = (x**p + y**p) ** (1.0 / p)
            best = np.minimum(best, np.where(cells["present"][ci, cj], dist, np.inf))
    return best


def _secondary(rng: np.random.Generator, size: int, spacing: float) -> np.ndarray:
    """Rounded cuboids whose outlines wobble like real precipitates (a noisy level set)."""
    dist = _superellipse_distance(rng, size, spacing)
    wobble = smooth_noise(rng, (size, size), max(spacing / 2.5, 1.0))
    return dist + rng.uniform(0.1, 0.2) * wobble < 1.0


def _tertiary(rng: np.random.Generator, secondary: np.ndarray, spacing: float) -> np.ndarray:
    """Small round precipitates where the matrix channels are wide enough."""
    size = secondary.shape[0]
    channel = ndimage.distance_transform_edt(~secondary)
    r_mean = max(1.0, spacing * rng.uniform(0.025, 0.05))
    eligible = np.flatnonzero(channel > 2.0 * r_mean + 1.5)
    target = rng.uniform(0.01, 0.035) * size * size / (np.pi * r_mean**2)
    count = int(min(target, len(eligible) // 4))
    if count == 0:
        return np.zeros_like(secondary)
    flat = rng.choice(eligible, size=count, replace=False)
    radii = np.maximum(1.0, r_mean * rng.uniform(0.6, 1.4, count))
    ys, xs = np.unravel_index(flat, secondary.shape)
    return disks(secondary.shape, ys, xs, radii) & (channel > 1.0)


def _shade(rng: np.random.Generator, phase: np.ndarray, spacing: float) -> np.ndarray:
    """Float image: darker precipitates with a bright edge rim, shading and faint scratches."""
    size = phase.shape[0]
    soft = ndimage.gaussian_filter((phase == SECONDARY).astype(np.float32), max(0.8, spacing / 50))
    dots = ndimage.gaussian_filter((phase == TERTIARY).astype(np.float32), 0.7)
    depth = rng.uniform(0.05, 0.16)
    img = 0.62 - depth * soft - rng.uniform(1.0, 1.6) * depth * dots
    img += rng.uniform(0.0, 0.12) * 4.0 * soft * (1.0 - soft)
    img += 0.02 * smooth_noise(rng, phase.shape, size / 2.0)
    img += 0.006 * smooth_noise(rng, phase.shape, 2.0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(rng.integers(0, 4)):
        angle, offset = rng.uniform(0, np.pi), rng.uniform(-size, size)
        dist = xx * np.cos(angle) + yy * np.sin(angle) - offset
        img -= rng.uniform(0.01, 0.03) * np.exp(-0.5 * dist**2)
    return img


def render(rng: np.random.Generator, size: int, *, shifted: bool = False):
    """One micrograph: (grey HxW uint8, phases HxW uint8 with 0 matrix, 1 secondary, 2 tertiary)."""
    imaging = draw_imaging(rng, shifted=shifted)
    spacing = size * rng.uniform(0.17, 0.26) * imaging.magnification
    secondary = _secondary(rng, size, spacing)
    tertiary = _tertiary(rng, secondary, spacing)
    phase = np.where(secondary, SECONDARY, np.where(tertiary, TERTIARY, MATRIX)).astype(np.uint8)
    return finish(_shade(rng, phase, spacing), rng, imaging), phase


def overlay_mask(grey: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """RGBA overlay like the real masks: blue/red on precipitates, the image's grey elsewhere."""
    mask = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    mask[phase == SECONDARY] = BLUE
    mask[phase == TERTIARY] = RED
    return mask


def jobs(out: Path, settings: Settings) -> list:
    """The files to write, each as (relative paths, callable writing them)."""

    def draw(rng, size: int, shifted: bool):
        return render(rng, size, shifted=shifted)

    return segmentation_jobs(out, settings, draw, mask_suffix="_mask", to_mask=overlay_mask)
