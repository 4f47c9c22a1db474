"""Segmentation metrics: pure numpy functions, no torch or ray.

``iou`` is the paper's IoU, identical to smp's former ``utils.metrics.IoU(threshold=0.5)``:
prediction channels are thresholded at 0.5, then intersection and union are summed over all
pixels **and all channels, background included**, with ``eps`` added to both::

    iou = (sum(gt * pr) + eps) / (sum(gt) + sum(pr) - sum(gt * pr) + eps)

Whole-image evaluation accumulates :class:`IoUCounts` per image, so a split's IoU sums over
all its pixels (as the paper's formula over one batch holding every image would).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

EPS = 1e-7
THRESHOLD = 0.5


def one_hot(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """``(H, W)`` class indices -> ``(C, H, W)`` bool channels."""
    return mask[None, ...] == np.arange(num_classes, dtype=mask.dtype).reshape(-1, 1, 1)


def iou(pred: np.ndarray, target: np.ndarray, *, threshold: float = THRESHOLD) -> float:
    """The paper's IoU of channel-first probabilities (or one-hot) against one-hot targets.

    ``pred`` and ``target`` have the same shape (``(C, H, W)`` or ``(N, C, H, W)``).
    """
    pr = pred > threshold
    gt = target.astype(bool)
    inter = float(np.count_nonzero(pr & gt))
    union = float(np.count_nonzero(gt)) + float(np.count_nonzero(pr)) - inter
    return (inter + EPS) / (union + EPS)


@dataclass
class IoUCounts:
    """Per-class pixel counts from which every IoU variant follows; add to accumulate."""

    intersection: np.ndarray  # (C,) int64
    predicted: np.ndarray
    target: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int) -> IoUCounts:
        z = np.zeros(num_classes, dtype=np.int64)
        return cls(z.copy(), z.copy(), z.copy())

    def __add__(self, other: IoUCounts) -> IoUCounts:
        return IoUCounts(
            self.intersection + other.intersection,
            self.predicted + other.predicted,
            self.target + other.target,
        )

    @property
    def union(self) -> np.ndarray:
        return self.predicted + self.target - self.intersection


def counts(pred: np.ndarray, mask: np.ndarray, *, threshold: float = THRESHOLD) -> IoUCounts:
    """Counts of ``(C, H, W)`` probabilities (thresholded) against ``(H, W)`` class indices."""
    pr = pred > threshold
    gt = one_hot(mask, pred.shape[0])
    axes = (1, 2)
    return IoUCounts(
        intersection=np.count_nonzero(pr & gt, axis=axes).astype(np.int64),
        predicted=np.count_nonzero(pr, axis=axes).astype(np.int64),
        target=np.count_nonzero(gt, axis=axes).astype(np.int64),
    )


def iou_from_counts(c: IoUCounts) -> float:
    """The paper's IoU (all channels summed, background included)."""
    inter = float(c.intersection.sum())
    return (inter + EPS) / (float(c.union.sum()) + EPS)


def class_iou(c: IoUCounts) -> np.ndarray:
    """IoU per class; NaN for a class absent from both prediction and target."""
    union = c.union.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, c.intersection / union, np.nan)


def mean_foreground_iou(c: IoUCounts) -> float:
    """Mean of the per-class IoU over classes 1.. (class 0 is "everything else").

    Classes absent from both prediction and target are left out; NaN if none remain.
    """
    fg = class_iou(c)[1:]
    fg = fg[~np.isnan(fg)]
    return float(fg.mean()) if fg.size else float("nan")


def total(parts: Iterable[IoUCounts], num_classes: int) -> IoUCounts:
    out = IoUCounts.zeros(num_classes)
    for part in parts:
        out = out + part
    return out
