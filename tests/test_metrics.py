"""The paper's IoU and its per-class variants, against hand-computed cases."""

import math

import numpy as np
import pytest

from trainables import metrics


def onehot(mask, c):
    return metrics.one_hot(np.asarray(mask, dtype=np.uint8), c).astype(np.float32)


TARGET = np.array([[0, 1], [1, 1]], dtype=np.uint8)
PRED = np.array([[0, 0], [1, 1]], dtype=np.uint8)


def test_iou_sums_over_all_channels_background_included():
    # channel 0: gt {00}, pred {00, 01}: I=1; channel 1: gt {01, 10, 11}, pred {10, 11}: I=2
    # I = 3, |gt| = 4, |pred| = 4, union = 5
    assert metrics.iou(onehot(PRED, 2), onehot(TARGET, 2)) == pytest.approx(0.6)


def test_perfect_prediction_is_one():
    assert metrics.iou(onehot(TARGET, 3), onehot(TARGET, 3)) == pytest.approx(1.0)


def test_probabilities_are_thresholded_at_half_not_argmaxed():
    # the argmax would be class 0 (correct), but no channel exceeds 0.5: nothing predicted
    probs = np.array([0.4, 0.35, 0.25], dtype=np.float32).reshape(3, 1, 1)
    assert metrics.iou(probs, onehot([[0]], 3)) == pytest.approx(0.0, abs=1e-6)
    counts = metrics.counts(probs, np.array([[0]], dtype=np.uint8))
    assert counts.predicted.tolist() == [0, 0, 0]


def test_counts_give_class_iou_and_mean_foreground():
    c = metrics.counts(onehot(PRED, 2), TARGET)
    assert c.intersection.tolist() == [1, 2]
    assert c.union.tolist() == [2, 3]
    assert metrics.iou_from_counts(c) == pytest.approx(0.6)
    np.testing.assert_allclose(metrics.class_iou(c), [0.5, 2 / 3])
    assert metrics.mean_foreground_iou(c) == pytest.approx(2 / 3)


def test_counts_of_images_add_up_to_the_iou_of_all_pixels():
    rng = np.random.default_rng(0)
    masks = [rng.integers(0, 3, (5, 7)).astype(np.uint8) for _ in range(3)]
    preds = [rng.integers(0, 3, (5, 7)).astype(np.uint8) for _ in range(3)]
    total = metrics.total(
        (metrics.counts(onehot(p, 3), m) for p, m in zip(preds, masks, strict=True)), 3
    )
    joint = metrics.iou(
        np.concatenate([onehot(p, 3) for p in preds], axis=2),
        np.concatenate([onehot(m, 3) for m in masks], axis=2),
    )
    assert metrics.iou_from_counts(total) == pytest.approx(joint)


def test_absent_class_has_no_iou_and_is_left_out_of_the_foreground_mean():
    c = metrics.counts(onehot(PRED, 3), TARGET)  # class 2 in neither
    assert math.isnan(metrics.class_iou(c)[2])
    assert metrics.mean_foreground_iou(c) == pytest.approx(2 / 3)
