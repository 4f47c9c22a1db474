"""Measurements of predicted class masks: phase fractions and particle sizes.

Plain numpy + scikit-image (``regionprops`` on 8-connected components), no torch or ray.

Example::

    phases = phase_rows(mask, ["matrix", "secondary"], image="a")
    particles = particle_rows(mask, ["matrix", "secondary"], image="a", scale=Scale(0.01, "um"))
    summary = summarise(phases, particles, scale=Scale(0.01, "um"))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# table columns
IMAGE, CLASS, PIXELS, FRACTION = "image", "class", "pixels", "fraction"
MEMBER_STD = "fraction_member_std"  # spread of the fraction across ensemble members
PARTICLE, AREA_PX, AREA, DIAMETER = "particle", "area_px", "area", "equivalent_diameter"
CENTROID_X, CENTROID_Y, ECCENTRICITY, UNIT = "centroid_x", "centroid_y", "eccentricity", "unit"
PHASE_COLUMNS = (IMAGE, CLASS, PIXELS, FRACTION)
PARTICLE_COLUMNS = (IMAGE, CLASS, PARTICLE, AREA_PX, AREA, DIAMETER, CENTROID_X, CENTROID_Y,
                    ECCENTRICITY, UNIT)  # fmt: skip


@dataclass(frozen=True)
class Scale:
    """Physical size of one pixel's side (``1 px`` when not given)."""

    size: float = 1.0
    unit: str = "px"


def phase_rows(
    mask: np.ndarray,
    classes: Sequence[str],
    *,
    image: str,
    members: Sequence[np.ndarray] = (),
) -> list[dict[str, Any]]:
    """One row per class: pixels and area fraction; with ``members`` (>1) their spread."""
    counts = np.bincount(mask.ravel(), minlength=len(classes))[: len(classes)]
    total = max(int(mask.size), 1)
    spread = None
    if len(members) > 1:
        per = np.stack([np.bincount(m.ravel(), minlength=len(classes))[: len(classes)]
                        for m in members]) / total  # fmt: skip
        spread = per.std(axis=0)
    rows = []
    for i, name in enumerate(classes):
        row = {IMAGE: image, CLASS: name, PIXELS: int(counts[i]), FRACTION: counts[i] / total}
        if spread is not None:
            row[MEMBER_STD] = float(spread[i])
        rows.append(row)
    return rows


def particle_rows(
    mask: np.ndarray, classes: Sequence[str], *, image: str, scale: Scale = Scale()
) -> list[dict[str, Any]]:
    """One row per connected component of each class but class 0 (8-connectivity)."""
    from skimage.measure import label, regionprops

    rows = []
    for index in range(1, len(classes)):
        labels = label(mask == index, connectivity=2)
        for region in regionprops(labels):
            cy, cx = region.centroid
            rows.append({
                IMAGE: image,
                CLASS: classes[index],
                PARTICLE: int(region.label),
                AREA_PX: int(region.area),
                AREA: float(region.area) * scale.size**2,
                DIAMETER: float(region.equivalent_diameter_area) * scale.size,
                CENTROID_X: float(cx) * scale.size,
                CENTROID_Y: float(cy) * scale.size,
                ECCENTRICITY: float(region.eccentricity),
                UNIT: scale.unit,
            })  # fmt: skip
    return rows


def summarise(
    phases: list[dict[str, Any]],
    particles: list[dict[str, Any]],
    classes: Sequence[str],
    *,
    scale: Scale = Scale(),
) -> dict[str, Any]:
    """Per class: phase fraction mean ± std across images (and across ensemble members when
    recorded), particle count and quantiles of area and equivalent diameter."""
    images = sorted({r[IMAGE] for r in phases})
    out: dict[str, Any] = {"images": len(images), "unit": scale.unit, "pixel_size": scale.size,
                           "quantiles": list(QUANTILES), "classes": {}}  # fmt: skip
    for i, name in enumerate(classes):
        fractions = np.array([r[FRACTION] for r in phases if r[CLASS] == name], dtype=float)
        entry: dict[str, Any] = {
            "fraction_mean": _stat(fractions, np.mean),
            "fraction_std": _stat(fractions, lambda a: np.std(a, ddof=1) if len(a) > 1 else 0.0),
        }
        spreads = [r[MEMBER_STD] for r in phases if r[CLASS] == name and MEMBER_STD in r]
        if spreads:
            entry["fraction_member_std_mean"] = float(np.mean(spreads))
        if i > 0:
            mine = [p for p in particles if p[CLASS] == name]
            entry["particles"] = len(mine)
            entry["area_quantiles"] = _quantiles([p[AREA] for p in mine])
            entry["diameter_quantiles"] = _quantiles([p[DIAMETER] for p in mine])
        out["classes"][name] = entry
    return out


def _stat(values: np.ndarray, fn: Any) -> float | None:
    return float(fn(values)) if len(values) else None


def _quantiles(values: list[float]) -> list[float] | None:
    if not values:
        return None
    return [float(v) for v in np.quantile(np.asarray(values, dtype=float), QUANTILES)]
