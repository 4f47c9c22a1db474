"""The paper's loss: bce_weight * CE + (1 - bce_weight) * Dice, by hand."""

import math

import pytest
import torch
from torch.nn import functional as F

from trainables.losses import SegmentationLoss

# uniform logits over 2 classes: p = 0.5 everywhere; the 4 pixels are all class 1
LOGITS = torch.zeros(1, 2, 2, 2)
TARGET = torch.ones(1, 2, 2, dtype=torch.long)
CE = math.log(2)
# smp multi-class Dice: class 1: 1 - 2*2/(2+4) = 1/3; class 0 (absent) masked to 0; mean 1/6
DICE = 1 / 6


@pytest.mark.parametrize(
    ("weight", "expected"), [(1.0, CE), (0.0, DICE), (0.7, 0.7 * CE + 0.3 * DICE)]
)
def test_loss_mixes_cross_entropy_and_dice(weight, expected):
    loss = SegmentationLoss(bce_weight=weight)(LOGITS, TARGET)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_confident_correct_logits_give_a_small_loss_and_finite_gradients():
    target = torch.randint(0, 3, (2, 8, 8))
    logits = (F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 20).requires_grad_()
    loss = SegmentationLoss()(logits, target)
    loss.backward()
    assert float(loss.detach()) < 1e-3
    assert torch.isfinite(logits.grad).all()


def test_bf16_logits_are_scored_in_fp32():
    target = torch.randint(0, 3, (1, 8, 8))
    logits = torch.randn(1, 3, 8, 8)
    full = SegmentationLoss()(logits, target)
    half = SegmentationLoss()(logits.bfloat16(), target)
    assert half.dtype == torch.float32
    assert float(half) == pytest.approx(float(full), rel=1e-2)
