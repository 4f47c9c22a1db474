"""The typed configuration of one segmentation trial, built once from Ray's config dict.

Every value a trial reads is a field here; :meth:`SegmentationConfig.from_dict` rejects
unknown keys (answering with the nearest valid key) and out-of-range values with one-line
messages naming the key, the rule and the value received. Inside the trainable the frozen
object is trusted.

Example::

    cfg = SegmentationConfig.from_dict({"encoder": "resnet18", "decoder": "Unet", "lr": 1e-3})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from core.errors import UserError, unknown_name

Precision = Literal["auto", "fp32", "bf16", "fp16"]
ChannelsLast = Literal["auto", "true", "false"]

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
CHANNELS_LAST: tuple[str, ...] = ("auto", "true", "false")


@dataclass(frozen=True)
class SegmentationConfig:
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

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> SegmentationConfig:
        """Validate ``config`` (Ray's trial config) and build the frozen config."""
        names = [f.name for f in fields(cls)]
        for key in config:
            if key not in names:
                raise unknown_name("trial config key", str(key), names)
        values = {f.name: _coerce(f, config[f.name]) for f in fields(cls) if f.name in config}
        cfg = cls(**values)
        cfg._validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _validate(self) -> None:
        _in_range("bce_weight", self.bce_weight, 0.0, 1.0)
        _in_range("random_resize", self.random_resize, 0.0, 0.9)
        for name in ("lr", "lr_final"):
            _positive(name, getattr(self, name))
        for name in ("batch_size", "crop", "max_epochs", "patience", "samples_per_epoch"):
            _positive(name, getattr(self, name))
        for name in ("eval_tile", "eval_batch", "checkpoints_to_keep", "checkpoint_every"):
            _positive(name, getattr(self, name))
        if self.eval_overlap < 0 or self.eval_overlap * 2 >= self.eval_tile:
            raise UserError(
                f"`eval_overlap` must be in [0, eval_tile / 2), "
                f"but got {self.eval_overlap} with eval_tile={self.eval_tile}"
            )
        for name in ("crop", "eval_tile"):
            if getattr(self, name) % 32:
                value = getattr(self, name)
                raise UserError(f"`{name}` must be a multiple of 32, but got {value}")
        if self.samples_per_epoch < self.batch_size:
            raise UserError(
                f"`samples_per_epoch` must be >= `batch_size`, "
                f"but got {self.samples_per_epoch} < {self.batch_size}"
            )
        _choice("precision", self.precision, PRECISIONS)
        _choice("channels_last", self.channels_last, CHANNELS_LAST)
        _check_augment(self.augment)


def _check_augment(name: str) -> None:
    from trainables.augment import list_presets  # late: albumentations is slow to import

    if name not in list_presets():
        raise unknown_name("augment preset", name, list_presets())


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    """Accept what YAML and Ray produce (ints for floats, bools for flags); refuse the rest."""
    kind = str(field.type)
    name = field.name
    if value is None and "None" in kind:
        return None
    if kind.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"`{name}` must be a number, but got {value!r}")
        return float(value)
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"`{name}` must be an integer, but got {value!r}")
        return value
    if name == "channels_last" and isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        raise UserError(f"`{name}` must be a string, but got {value!r}")
    return value


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UserError(f"`{name}` must be > 0, but got {value}")


def _in_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise UserError(f"`{name}` must be in [{low}, {high}], but got {value}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise unknown_name(f"value for `{name}`", value, choices)
