"""Encoder pretraining: classification on an image folder, the best encoder exported to the zoo.

The paper's protocol: an smp encoder + global average pooling + a linear head; SGD (momentum
0.9, weight decay 1e-4) from lr 0.1, decayed by StepLR; early stopping on val top-1 after
``patience`` epochs without improvement; augmentation by random resized crops, flips,
rotations, photometric changes and noise. :class:`PretrainTrial` and :func:`run_pretraining`
are plain torch (no ray); :func:`pretraining_trainable` is the thin Ray Tune adapter.

Example (Ray)::

    trainable = tune.with_parameters(pretraining_trainable, data=load_image_folder(root))
    tune.Tuner(trainable, param_space={"encoder": "resnet18", "zoo_dir": "zoo",
                                       "zoo_name": "r18-micro"}).fit()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader

from core import keys as K
from core.errors import ConfigError, UserError
from trainables import checkpoint as ckpt
from trainables.classify import (
    ClassificationLoss,
    Classifier,
    ImageDataset,
    eval_transform,
    evaluate,
    train_augmentation,
)
from trainables.classify_data import ClassificationData
from trainables.inits import apply_init
from trainables.loop import train_one_epoch
from trainables.models import validate_encoder
from trainables.reporting import Reporter, ray_report, run_epochs
from trainables.runtime import Runtime, ray_resources, resolve_runtime
from trainables.task import TASKS, Task
from trainables.typed_config import TypedConfig, positive
from trainables.zoo import export_encoder, load_zoo, validate_zoo_name


@dataclass(frozen=True)
class PretrainConfig(TypedConfig):
    """One pretraining trial; built once from Ray's dict by :meth:`from_dict`."""

    WHAT = "pretraining key"

    encoder: str = "resnet18"
    init: str = "none"
    zoo_dir: str = ""
    zoo_name: str = ""
    overwrite: bool = False
    max_epochs: int = 30
    patience: int = 5
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step: int = 10  # StepLR: multiply the lr by lr_gamma every lr_step epochs
    lr_gamma: float = 0.1
    batch_size: int = 32
    size: int = 64
    samples_per_epoch: int = 0  # 0: one pass over the training images
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: Literal["auto", "true", "false"] = "auto"
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch always has one)

    def validate(self) -> None:
        positive(self, "max_epochs", "patience", "lr", "lr_step", "batch_size", "size")
        positive(self, "checkpoint_every")
        if not 0 <= self.momentum < 1:
            raise ConfigError("momentum", f"must be in [0, 1), but got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, but got {self.weight_decay}")
        if not 0 < self.lr_gamma <= 1:
            raise ConfigError("lr_gamma", f"must be in (0, 1], but got {self.lr_gamma}")
        if self.size % 32:
            raise ConfigError("size", f"must be a multiple of 32, but got {self.size}")
        validate_encoder(self.encoder)
        if bool(self.zoo_dir) != bool(self.zoo_name):
            raise UserError("`zoo_dir` and `zoo_name` go together: set both or neither")
        if self.zoo_name:
            validate_zoo_name(self.zoo_name)


class PretrainTrial:
    """One pretraining run as explicit state: step an epoch, checkpoint, restore, export."""

    def __init__(self, cfg: PretrainConfig, data: ClassificationData, runtime: Runtime) -> None:
        self.cfg, self.data, self.rt = cfg, data, runtime
        torch.manual_seed(cfg.seed)
        self.model = Classifier(cfg.encoder, len(data.classes))
        apply_init(
            self.model, cfg.init, cfg.encoder, zoo_dir=Path(cfg.zoo_dir) if cfg.zoo_dir else None
        )
        self.model = runtime.place(self.model)
        self.opt = torch.optim.SGD(
            self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, cfg.lr_step, gamma=cfg.lr_gamma)
        self.loss_fn = ClassificationLoss()
        self.epoch, self.best_epoch, self.best = 0, 0, (-1.0, 0.0)  # (top1, top5)
        self.wall_s = 0.0
        self.best_model: dict[str, torch.Tensor] | None = None
        self.last_result: dict[str, Any] | None = None  # set by restore
        self.history: list[dict[str, Any]] = []  # every epoch's report so far; restored too
        val = ImageDataset(data.splits["val"], eval_transform(cfg.size), seed=0)
        self.val_loader = DataLoader(val, batch_size=cfg.batch_size)

    @property
    def finished(self) -> bool:
        stale = self.epoch - self.best_epoch >= self.cfg.patience
        return self.epoch >= self.cfg.max_epochs or (self.epoch > 0 and stale)

    def step(self) -> dict[str, Any]:
        """Train and validate one epoch; returns the epoch's report."""
        t0, cfg = time.perf_counter(), self.cfg
        seed = int(np.random.SeedSequence([cfg.seed, self.epoch]).generate_state(1)[0])
        train = ImageDataset(
            self.data.splits["train"],
            train_augmentation(cfg.size),
            seed=seed,
            length=cfg.samples_per_epoch,
        )
        loader = DataLoader(train, batch_size=cfg.batch_size, drop_last=len(train) > cfg.batch_size)
        lr = self.opt.param_groups[0]["lr"]
        train_loss = train_one_epoch(self.model, loader, self.loss_fn, self.opt, self.rt)
        self.sched.step()
        val_loss, top1, top5 = evaluate(self.model, self.val_loader, self.rt)
        self.epoch += 1
        if top1 > self.best[0]:
            self.best, self.best_epoch = (top1, top5), self.epoch
            self.best_model = _clone(self.model.state_dict())
        self.wall_s += time.perf_counter() - t0
        return {
            K.EPOCH: self.epoch,
            K.TRAIN_LOSS: train_loss,
            K.VAL_LOSS: val_loss,
            K.VAL_TOP1: top1,
            K.VAL_TOP5: top5,
            K.LR: lr,
            K.WALL_S: self.wall_s,  # cumulative, as segmentation reports it
        }

    def best_encoder(self) -> dict[str, torch.Tensor]:
        weights = self.best_model if self.best_model is not None else self.model.state_dict()
        return {k[len("encoder.") :]: v for k, v in weights.items() if k.startswith("encoder.")}

    def state(self) -> ckpt.TrialState:
        return ckpt.TrialState(
            epoch=self.epoch,
            model=_clone(self.model.state_dict()),
            optimizer=self.opt.state_dict(),
            schedule={
                "sched": self.sched.state_dict(),
                "best_epoch": self.best_epoch,
                "best_top1": self.best[0],
                "best_top5": self.best[1],
            },
            best_model=self.best_model,
            rng=ckpt.rng_state(),
            extra={"config": self.cfg.to_dict(), K.WALL_S: self.wall_s},
        )

    def restore(self, state: ckpt.TrialState) -> None:
        self.model.load_state_dict(state.model)
        self.opt.load_state_dict(state.optimizer)
        self.sched.load_state_dict(state.schedule["sched"])
        self.epoch, self.best_epoch = state.epoch, int(state.schedule["best_epoch"])
        self.best = (float(state.schedule["best_top1"]), float(state.schedule["best_top5"]))
        self.best_model = state.best_model
        self.last_result = state.extra.get("result")
        self.history = list(state.extra.get(K.HISTORY, []))
        self.wall_s = float(state.extra.get(K.WALL_S, 0.0))
        ckpt.set_rng_state(state.rng)

    def export(self) -> str:
        """Write the best encoder to the zoo; returns the entry name."""
        cfg = self.cfg
        entry = export_encoder(
            Path(cfg.zoo_dir),
            name=cfg.zoo_name,
            encoder=cfg.encoder,
            state_dict=self.best_encoder(),
            init=cfg.init,
            dataset=self.data.label,
            val_top1=self.best[0],
            val_top5=self.best[1],
            overwrite=True,
        )
        return entry.name


def _clone(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def check_zoo_name_free(cfg: PretrainConfig) -> None:
    """Refuse before training, not after, when the zoo entry exists and overwrite is off."""
    if not cfg.zoo_name or cfg.overwrite or not Path(cfg.zoo_dir).is_dir():
        return
    if cfg.zoo_name in load_zoo(Path(cfg.zoo_dir)):
        raise UserError(
            f"zoo entry {cfg.zoo_name!r} exists in {cfg.zoo_dir}; choose another name "
            "or set overwrite"
        )


def run_pretraining(trial: PretrainTrial, report: Reporter) -> None:
    """Epochs until early stopping or ``max_epochs``; the last report names the zoo entry."""

    def final(folder: Path) -> dict[str, Any]:
        result = {K.DONE: True, K.BEST_EPOCH: trial.best_epoch, K.BEST_VAL_TOP1: trial.best[0]}
        if trial.cfg.zoo_name:
            result[K.ZOO_ENTRY] = trial.export()
        return result

    run_epochs(trial, report, final=final, name="pretrain", every=trial.cfg.checkpoint_every)


def pretraining_trainable(config: dict[str, Any], *, data: ClassificationData) -> None:
    """Ray Tune function trainable: one pretraining trial, resumed from Ray's checkpoint.

    Bad configs and unbuildable encoders report ``infeasible=True`` with the error and return.
    """
    from ray import tune

    try:
        cfg = PretrainConfig.from_dict(config)
        cpus, use_cuda = ray_resources()
        torch.set_num_threads(cpus)
        runtime = resolve_runtime(
            cfg.precision, cfg.channels_last, use_cuda=use_cuda and torch.cuda.is_available()
        )
        trial = PretrainTrial(cfg, data, runtime)
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            check_zoo_name_free(cfg)
    except UserError as err:
        ray_report({K.INFEASIBLE: True, K.ERROR: str(err)}, None)
        return
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trial.restore(ckpt.load(Path(folder)))
    run_pretraining(trial, ray_report)


class PretrainingTask(Task):
    """Encoder pretraining by classification on an image folder, exported to an encoder zoo."""

    name = "pretraining"
    metric = K.VAL_TOP1
    best_key = K.BEST_VAL_TOP1
    epoch_keys = (K.TRAIN_LOSS, K.VAL_LOSS, K.VAL_TOP1, K.VAL_TOP5, K.LR, K.WALL_S)
    final_prefixes = (K.BEST_VAL_TOP1, K.ZOO_ENTRY)
    config_type = PretrainConfig

    def check(self, config: Mapping[str, Any]) -> str | None:
        return None

    def parse_data(self, raw: Any, *, base_dir: Path) -> Path:
        if not isinstance(raw, Mapping) or set(raw) - {"root"} or "root" not in raw:
            raise UserError(
                f"`data` for pretraining must be {{root: IMAGE_FOLDER}}, but got {raw!r}"
            )
        root = (base_dir / Path(str(raw["root"])).expanduser()).resolve()
        if not root.is_dir():
            raise UserError(f"`data.root`: folder '{root}' not found")
        return root

    def load_data(self, spec: Path, *, train: Mapping[str, Any]) -> ClassificationData:
        from trainables.classify_data import load_image_folder

        return load_image_folder(spec)

    def data_info(self, data: ClassificationData, *, spec: Any = None) -> dict[str, Any]:
        return {"dataset": data.label, "classes": list(data.classes), "test_splits": []}

    def trainable(self) -> Callable[..., None]:
        return pretraining_trainable


TASKS.add(PretrainingTask.name, PretrainingTask())
