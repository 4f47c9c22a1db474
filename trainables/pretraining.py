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

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.errors import UserError, unknown_name
from trainables import checkpoint as ckpt
from trainables.classify_data import ClassificationData, ClassifySplit
from trainables.inits import apply_init
from trainables.loop import check_finite
from trainables.models import validate_encoder
from trainables.reporting import Reporter, ray_report, run_epochs
from trainables.runtime import Runtime, ray_resources, resolve_runtime
from trainables.zoo import export_encoder, load_zoo, validate_zoo_name


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining trial; built once from Ray's dict by :meth:`from_dict`."""

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
    precision: str = "auto"
    channels_last: str = "auto"
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch always has one)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> PretrainConfig:
        """Typed config; unknown keys and out-of-range values get one-line errors."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        for key in config:
            if key not in known:
                raise unknown_name("pretraining key", key, known)
        values = {k: _coerce(k, v, type(getattr(cls, k))) for k, v in config.items()}
        cfg = cls(**values)
        cfg._check()
        return cfg

    def _check(self) -> None:
        positive = ("max_epochs", "patience", "lr", "lr_step", "batch_size", "size")
        for key in (*positive, "checkpoint_every"):
            if getattr(self, key) <= 0:
                raise UserError(f"`{key}` must be > 0, but got {getattr(self, key)}")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0 or not 0 < self.lr_gamma <= 1:
            raise UserError("need 0 <= momentum < 1, weight_decay >= 0 and 0 < lr_gamma <= 1")
        if self.size % 32:
            raise UserError(f"`size` must be a multiple of 32, but got {self.size}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise unknown_name("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        if self.channels_last not in ("auto", "true", "false"):
            raise unknown_name("channels_last", self.channels_last, ("auto", "true", "false"))
        validate_encoder(self.encoder)
        if bool(self.zoo_dir) != bool(self.zoo_name):
            raise UserError("`zoo_dir` and `zoo_name` go together: set both or neither")
        if self.zoo_name:
            validate_zoo_name(self.zoo_name)


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, Path):
        return str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"`{key}` must be {kind.__name__}, but got {value!r}")
    return value


class Classifier(nn.Module):
    """smp encoder -> global average pooling -> linear head; ``.encoder`` as in smp models."""

    def __init__(self, encoder: str, num_classes: int) -> None:
        super().__init__()
        self.encoder = smp.encoders.get_encoder(validate_encoder(encoder), weights=None)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(self.encoder.out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.encoder(x)[-1]).flatten(1))


def train_augmentation(size: int) -> A.Compose:
    """Random resized crop, flips, rotation, photometric changes and noise."""
    return A.Compose(
        [
            A.RandomResizedCrop(size=(size, size), scale=(0.2, 1.0), interpolation=cv2.INTER_AREA),
            A.HorizontalFlip(),
            A.VerticalFlip(),
            A.RandomRotate90(),
            A.Rotate(limit=15, border_mode=cv2.BORDER_REFLECT_101, p=0.3),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.RandomGamma(gamma_limit=(80, 120), p=0.3),
            A.GaussNoise(std_range=(0.01, 0.05), p=0.3),
        ]
    )


def eval_transform(size: int) -> A.Compose:
    return A.Compose([A.SmallestMaxSize(max_size=size), A.CenterCrop(size, size)])


class ImageDataset(Dataset):
    """Augmented images of a split; sample ``i`` of an epoch depends only on (seed, i)."""

    def __init__(self, split: ClassifySplit, augment: A.Compose, *, seed: int, length: int = 0):
        self.split, self.augment, self.seed = split, augment, seed
        self.length = length or len(split.images)
        order = np.random.default_rng(seed).permutation(max(self.length, len(split.images)))
        self.order = order % len(split.images)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        k = int(self.order[index])
        self.augment.set_random_seed(int(np.random.default_rng([self.seed, index]).integers(2**31)))
        image = self.augment(image=self.split.images[k])["image"]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), int(
            self.split.labels[k]
        )


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    """How many rows have their label among the ``k`` highest logits."""
    k = min(k, logits.shape[1])
    return int((logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum())


def train_epoch(
    model: nn.Module, loader: DataLoader, opt: torch.optim.Optimizer, rt: Runtime
) -> float:
    """Mean cross-entropy over one epoch of SGD steps."""
    model.train()
    total, n = 0.0, 0
    for images, labels in loader:
        with rt.autocast():
            logits = model(rt.prepare(images))
        loss = nn.functional.cross_entropy(logits.float(), labels.to(rt.device))
        value = check_finite("train_loss", float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total, n = total + value * len(labels), n + len(labels)
    return total / max(n, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, rt: Runtime) -> tuple[float, float, float]:
    """(mean loss, top-1, top-5) over a loader."""
    model.eval()
    loss, top1, top5, n = 0.0, 0, 0, 0
    for images, labels in loader:
        with rt.autocast():
            logits = model(rt.prepare(images)).float()
        labels = labels.to(rt.device)
        loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        top1 += topk_correct(logits, labels, 1)
        top5 += topk_correct(logits, labels, 5)
        n += len(labels)
    return check_finite("val_loss", loss / n), top1 / n, top5 / n


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
        self.epoch, self.best_epoch, self.best = 0, 0, (-1.0, 0.0)  # (top1, top5)
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
        train_loss = train_epoch(self.model, loader, self.opt, self.rt)
        self.sched.step()
        val_loss, top1, top5 = evaluate(self.model, self.val_loader, self.rt)
        self.epoch += 1
        if top1 > self.best[0]:
            self.best, self.best_epoch = (top1, top5), self.epoch
            self.best_model = _clone(self.model.state_dict())
        return {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_top1": top1,
            "val_top5": top5,
            "lr": lr,
            "wall_s": time.perf_counter() - t0,
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
            extra={"config": dataclasses.asdict(self.cfg)},
        )

    def restore(self, state: ckpt.TrialState) -> None:
        self.model.load_state_dict(state.model)
        self.opt.load_state_dict(state.optimizer)
        self.sched.load_state_dict(state.schedule["sched"])
        self.epoch, self.best_epoch = state.epoch, int(state.schedule["best_epoch"])
        self.best = (float(state.schedule["best_top1"]), float(state.schedule["best_top5"]))
        self.best_model = state.best_model
        self.last_result = state.extra.get("result")
        self.history = list(state.extra.get("history", []))
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
        result = {"done": True, "best_epoch": trial.best_epoch, "best_val_top1": trial.best[0]}
        if trial.cfg.zoo_name:
            result["zoo_entry"] = trial.export()
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
        ray_report({"infeasible": True, "error": str(err)}, None)
        return
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trial.restore(ckpt.load(Path(folder)))
    run_pretraining(trial, ray_report)
