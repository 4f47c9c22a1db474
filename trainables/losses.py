"""The paper's loss: ``bce_weight * CE + (1 - bce_weight) * Dice`` on raw logits.

The model outputs one channel per class (background included); the cross-entropy is the
multi-class form of the paper's BCE term and the Dice term is smp's multi-class ``DiceLoss``.
"""

from __future__ import annotations

import torch
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn


class SegmentationLoss(nn.Module):
    """``bce_weight * cross_entropy + (1 - bce_weight) * dice`` of ``(N, C, H, W)`` logits
    against ``(N, H, W)`` class indices."""

    def __init__(self, *, bce_weight: float = 0.7) -> None:
        super().__init__()
        self.bce_weight = float(bce_weight)
        self.ce = nn.CrossEntropyLoss()
        self.dice = DiceLoss(mode="multiclass", from_logits=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # both terms in fp32, also under autocast
        w = self.bce_weight
        loss = logits.new_zeros(())
        if w > 0:
            loss = loss + w * self.ce(logits, target)
        if w < 1:
            loss = loss + (1 - w) * self.dice(logits, target)
        return loss
