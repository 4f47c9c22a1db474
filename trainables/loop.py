"""The training protocol in plain torch (no ray): epochs of random crops, whole-image
evaluation, the paper's two-phase learning-rate schedule and divergence detection.

Randomness is derived from ``(seed, epoch, sample)``, so an epoch draws the same crops and
augmentations whether or not the trial was resumed before it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import albumentations as A
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.keys import DATA_WAIT_S
from trainables import metrics
from trainables.augment import seed_augmentation
from trainables.tiling import Runtime, predict_logits


class Diverged(RuntimeError):
    """A loss or metric became NaN or infinite; the trial must stop."""


def check_finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise Diverged(f"{name} is {value} (not finite)")
    return value


def epoch_seed(seed: int, epoch: int) -> int:
    """A stable 63-bit seed per (trial seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


class CropDataset(Dataset):
    """``length`` random augmented crops from in-memory images; deterministic per index."""

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        augment: A.Compose,
        *,
        length: int,
        seed: int,
    ) -> None:
        self.images, self.masks, self.augment = images, masks, augment
        self.length, self.seed = length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        k = int(rng.integers(len(self.images)))
        seed_augmentation(self.augment, int(rng.integers(2**31)))
        out = self.augment(image=self.images[k], mask=self.masks[k])
        image = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))
        return image, torch.from_numpy(np.ascontiguousarray(out["mask"])).long()


def make_loader(dataset: CropDataset, *, batch_size: int) -> DataLoader:
    # In-memory data and cheap augmentation: worker processes would cost more than they save.
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0, drop_last=True)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    runtime: Runtime,
    scaler: torch.amp.GradScaler | None = None,
    *,
    timing: dict[str, float] | None = None,
) -> float:
    """Mean training loss over the epoch; raises :class:`Diverged` on a non-finite loss.

    ``timing`` (a dict) receives ``data_wait_s``: the seconds the loop waited for the loader's
    next batch. Each step ends by reading its loss (a device sync), so that is time the
    device sat idle: a loader that keeps up waits ~0 after its first batch."""
    model.train()
    total, n, wait = 0.0, 0, 0.0
    batches = iter(loader)
    while True:
        t0 = time.perf_counter()
        batch = next(batches, None)
        wait += time.perf_counter() - t0
        if batch is None:
            break
        images, masks = batch
        x, y = runtime.prepare(images), masks.to(runtime.device)
        with runtime.autocast():
            logits = model(x)
        loss = loss_fn(logits, y)
        value = check_finite("train_loss", float(loss.detach()))
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total, n = total + value * len(images), n + len(images)
    if timing is not None:
        timing[DATA_WAIT_S] = wait
    return total / max(n, 1)


@dataclass(frozen=True)
class EvalSettings:
    num_classes: int
    tile: int = 1024
    overlap: int = 128
    batch: int = 4


@dataclass
class EvalResult:
    loss: float
    iou: float
    counts: metrics.IoUCounts
    per_image_iou: dict[str, float]
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # index masks, uint8


def evaluate(
    model: nn.Module,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    names: Sequence[str],
    *,
    loss_fn: nn.Module,
    runtime: Runtime,
    settings: EvalSettings,
    keep_predictions: bool = False,
) -> EvalResult:
    """Whole-image loss and IoU of a split (IoU summed over all its pixels)."""
    model.eval()
    total = metrics.IoUCounts.zeros(settings.num_classes)
    losses, per_image, preds = [], {}, {}
    for image, mask, name in zip(images, masks, names, strict=True):
        logits = predict_logits(
            model, image, num_classes=settings.num_classes, runtime=runtime,
            tile=settings.tile, overlap=settings.overlap, batch=settings.batch,
        )  # fmt: skip
        target = torch.from_numpy(mask.astype(np.int64))  # a copy: masks are read-only
        losses.append(float(loss_fn(logits[None], target[None])))
        probs = torch.softmax(logits, dim=0).numpy()
        c = metrics.counts(probs, mask)
        total = total + c
        per_image[name] = metrics.iou_from_counts(c)
        if keep_predictions:
            preds[name] = probs.argmax(axis=0).astype(np.uint8)
    loss = check_finite("val_loss", float(np.mean(losses)))
    iou = check_finite("val_iou", metrics.iou_from_counts(total))
    return EvalResult(loss, iou, total, per_image, preds)


@dataclass
class PaperSchedule:
    """The paper's schedule: ``lr`` until ``patience`` epochs bring no val-IoU improvement,
    then ``lr_final`` until another ``patience`` epochs without improvement, then stop."""

    lr: float
    lr_final: float
    patience: int
    phase: int = 0  # 0: lr, 1: lr_final, 2: done
    best_iou: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    @property
    def current_lr(self) -> float:
        return self.lr if self.phase == 0 else self.lr_final

    @property
    def done(self) -> bool:
        return self.phase >= 2

    def step(self, epoch: int, val_iou: float) -> bool:
        """Record an epoch's val IoU; True if it is the best so far (strictly)."""
        check_finite("val_iou", val_iou)
        if val_iou > self.best_iou:
            self.best_iou, self.best_epoch, self.bad_epochs = val_iou, epoch, 0
            return True
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.phase, self.bad_epochs = self.phase + 1, 0
        return False

    def state_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        for key, value in state.items():
            setattr(self, key, type(getattr(self, key))(value))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
