"""A pretraining trial's typed config and its learning-rate schedule (the paper's protocol).

:class:`PretrainConfig` is what one pretraining trial is built from (Ray's dict, the
``microsweep pretrain`` flags); :func:`scaled_lr` and :func:`lr_factor` give SGD's rate per
epoch; :func:`check_zoo_name_free` refuses a taken zoo name before training. The trial itself
is :mod:`trainables.pretraining`. Example::

    cfg = PretrainConfig.from_dict({"encoder": "resnet18", "batch_size": 64, "workers": 2})
    scaled_lr(cfg, workers=cfg.workers)   # 0.1 * 128 / 1024 = 0.0125
    lr_factor(cfg, 0)                     # 1/3: the first of 2 warm-up epochs
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.errors import ConfigError, UserError
from trainables.typed_config import TypedConfig, positive


@dataclass(frozen=True)
class PretrainConfig(TypedConfig):
    """One pretraining trial; built once from Ray's dict by :meth:`from_dict`."""

    WHAT = "pretraining key"

    encoder: str = "resnet18"
    init: str = "none"
    zoo_dir: str = ""
    zoo_name: str = ""
    overwrite: bool = False
    max_epochs: int = 100
    patience: int = 30  # early stopping: epochs without a better val top-1
    lr: float = 0.1  # at a global batch of lr_batch; scaled linearly to the actual one
    lr_batch: int = 1024
    warmup_epochs: int = 2  # linear warm-up to the scaled lr over the first epochs
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step: int = 30  # the paper's decay: the lr times lr_gamma every lr_step epochs
    lr_gamma: float = 0.9
    batch_size: int = 32  # per worker: the global batch is batch_size x workers
    size: int = 64
    samples_per_epoch: int = 0  # 0: one pass over the training images
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: Literal["auto", "true", "false"] = "auto"
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch always has one)
    workers: int = 1  # data-parallel Ray Train workers (set from resources.workers_per_trial)
    worker_cpu: float = 1.0  # each worker's resources (from resources.cpu / resources.gpu)
    worker_gpu: float = 0.0
    loader_workers: int = -1  # decoding processes per training worker; -1: its CPUs, at most 4

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> PretrainConfig:
        """As :meth:`TypedConfig.from_dict`, with ``{KEY}`` in ``zoo_name`` replaced by the
        trial's value of KEY (``mn-{encoder}`` -> ``mn-resnet50``, see :func:`fill_zoo_name`)."""
        name = config.get("zoo_name")
        if isinstance(name, str) and "{" in name:
            config = {**config, "zoo_name": fill_zoo_name(name, config)}
        return super().from_dict(config)

    def validate(self) -> None:
        positive(self, "max_epochs", "patience", "lr", "lr_step", "batch_size", "size")
        positive(self, "checkpoint_every", "lr_batch", "workers", "worker_cpu")
        if self.warmup_epochs < 0:
            raise ConfigError("warmup_epochs", f"must be >= 0, but got {self.warmup_epochs}")
        if not 0 <= self.momentum < 1:
            raise ConfigError("momentum", f"must be in [0, 1), but got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, but got {self.weight_decay}")
        if not 0 < self.lr_gamma <= 1:
            raise ConfigError("lr_gamma", f"must be in (0, 1], but got {self.lr_gamma}")
        if self.size % 32:
            raise ConfigError("size", f"must be a multiple of 32, but got {self.size}")
        from trainables.models import validate_encoder  # smp: imported when a config is built
        from trainables.zoo import validate_zoo_name

        validate_encoder(self.encoder)
        if bool(self.zoo_dir) != bool(self.zoo_name):
            raise UserError("`zoo_dir` and `zoo_name` go together: set both or neither")
        if self.zoo_name:
            validate_zoo_name(self.zoo_name)


def fill_zoo_name(name: str, config: Mapping[str, Any]) -> str:
    """``name`` with ``{KEY}`` replaced by the trial's value of that pretraining key (or its
    default): ``mn-{encoder}-lr{lr}`` -> ``mn-resnet50-lr0.1``. Other braces: one UserError."""
    values = {k: config.get(k, getattr(PretrainConfig, k)) for k in PretrainConfig.keys()}  # noqa: SIM118
    try:
        return name.format(**values)
    except (KeyError, IndexError, ValueError, AttributeError):
        raise UserError(
            f"`zoo_name` {name!r} may name pretraining keys in braces only (each trial's "
            "value), e.g. zoo_name: mn-{encoder} or mn-{encoder}-lr{lr}"
        ) from None


def check_distinct_zoo_names(points: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a plan in which two trials would export the same zoo entry (the second would
    fail after training, or replace the first with `overwrite`)."""
    seen: dict[str, Mapping[str, Any]] = {}
    for point in points:
        name = PretrainConfig.from_dict(point).zoo_name
        if name and name in seen:
            differ = [k for k in sorted(set(point) | set(seen[name]))
                      if point.get(k) != seen[name].get(k)]  # fmt: skip
            how = ", ".join(f"{k} {seen[name].get(k)} / {point.get(k)}" for k in differ)
            example = "".join(f"-{{{k}}}" for k in differ) or "-{seed}"
            raise UserError(
                f"two trials would export the zoo entry {name!r} ({how or 'the same config'}); "
                f"name what differs in `zoo_name`, e.g. zoo_name: {point['zoo_name']}{example}"
            )
        seen[name] = point


def scaled_lr(cfg: PretrainConfig, *, workers: int) -> float:
    """The linear scaling rule: ``lr`` is the rate at a global batch of ``lr_batch``.

    Example: ``lr 0.1, lr_batch 1024``, 2 workers x batch 64 -> 0.1 * 128 / 1024 = 0.0125.
    """
    return cfg.lr * cfg.batch_size * workers / cfg.lr_batch


def lr_factor(cfg: PretrainConfig, epoch: int) -> float:
    """The scaled lr's multiplier in ``epoch`` (0-based): a linear warm-up over
    ``warmup_epochs`` (1/(w+1), 2/(w+1), ...), then ``lr_gamma`` every ``lr_step`` epochs."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    return cfg.lr_gamma ** (epoch // cfg.lr_step)


def check_zoo_name_free(cfg: PretrainConfig) -> None:
    """Refuse before training, not after, when the zoo entry exists and overwrite is off."""
    if not cfg.zoo_name or cfg.overwrite or not Path(cfg.zoo_dir).is_dir():
        return
    from trainables.zoo import load_zoo

    if cfg.zoo_name in load_zoo(Path(cfg.zoo_dir)):
        raise UserError(
            f"zoo entry {cfg.zoo_name!r} exists in {cfg.zoo_dir}; choose another name "
            "or set overwrite"
        )
