"""The typed configuration of one segmentation trial, built once from Ray's config dict.

Every value a trial reads is a field here; :meth:`SegmentationConfig.from_dict` (see
:mod:`trainables.typed_config`) rejects unknown keys (answering with the nearest valid key) and
out-of-range values with one-line messages naming the key, the rule and the value received.
The sweep builds it for every planned trial before Ray starts; inside the trainable the frozen
object is trusted.

Example::

    cfg = SegmentationConfig.from_dict({"encoder": "resnet18", "decoder": "Unet", "lr": 1e-3})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.errors import ConfigError, closest
from trainables.typed_config import TypedConfig, in_range, multiple_of, positive

Precision = Literal["auto", "fp32", "bf16", "fp16"]
ChannelsLast = Literal["auto", "true", "false"]


@dataclass(frozen=True)
class SegmentationConfig(TypedConfig):
    """One segmentation trial: model, loss, optimiser schedule, data sampling, runtime."""

    encoder: str = "resnet18"
    decoder: str = "Unet"
    init: str = "none"
    bce_weight: float = 0.7
    lr: float = 2e-4
    lr_final: float = 1e-5
    batch_size: int = 8
    crop: int = 256
    augment: str = "superalloy"
    random_resize: float = 0.0  # scale jitter: factor drawn from [1 - r, 1 + r]; 0 = off
    seed: int = 0
    max_epochs: int = 100
    patience: int = 30
    samples_per_epoch: int = 64  # random crops drawn from the training images per epoch
    precision: Precision = "auto"
    channels_last: ChannelsLast = "auto"
    eval_tile: int = 1024  # whole-image inference up to this size, overlapping tiles above
    eval_overlap: int = 128
    eval_batch: int = 4
    checkpoints_to_keep: int = 2
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch always has one)
    zoo_dir: str | None = None
    cache_dir: str | None = None
    weights_dir: str | None = None  # a fetched weights folder (trainables.weights_dir)

    def validate(self) -> None:
        in_range(self, "bce_weight", 0.0, 1.0)
        in_range(self, "random_resize", 0.0, 0.9)
        positive(self, "lr", "lr_final", "batch_size", "crop", "max_epochs", "patience")
        positive(self, "samples_per_epoch", "eval_tile", "eval_batch")
        positive(self, "checkpoints_to_keep", "checkpoint_every")
        if self.eval_overlap < 0 or self.eval_overlap * 2 >= self.eval_tile:
            raise ConfigError(
                "eval_overlap",
                f"must be in [0, eval_tile / 2), but got {self.eval_overlap} "
                f"with eval_tile={self.eval_tile}",
            )
        multiple_of(self, 32, "crop", "eval_tile")
        if self.samples_per_epoch < self.batch_size:
            raise ConfigError(
                "samples_per_epoch",
                f"must be >= `batch_size`, but got {self.samples_per_epoch} < {self.batch_size}",
            )
        _check_augment(self.augment)


def _check_augment(name: str) -> None:
    from trainables.augment import list_presets  # late: albumentations is slow to import

    if name not in list_presets():
        close = closest(name, list_presets())
        hint = f"; did you mean {close!r}?" if close else ""
        raise ConfigError(
            "augment", f"must be one of {', '.join(list_presets())}, but got {name!r}{hint}"
        )
