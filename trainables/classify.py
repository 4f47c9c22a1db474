"""Classification for encoder pretraining, in plain torch (no ray): the model (an smp encoder
with a linear head), its augmentation, the image dataset and top-k evaluation. Training steps
use :func:`trainables.loop.train_one_epoch` like segmentation, with :class:`ClassificationLoss`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.errors import DataError
from trainables.augment import seed_augmentation
from trainables.classify_data import ClassifySplit, ImageProblem, read_pixels
from trainables.loop import check_finite
from trainables.models import meta_parameters, validate_encoder
from trainables.runtime import Runtime


class ClassificationLoss(nn.Module):
    """Cross-entropy of ``(N, C)`` logits against ``(N,)`` labels, in fp32 under autocast too."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), labels)


class Classifier(nn.Module):
    """smp encoder -> global average pooling -> linear head; ``.encoder`` as in smp models."""

    def __init__(self, encoder: str, num_classes: int) -> None:
        super().__init__()
        self.encoder = smp.encoders.get_encoder(validate_encoder(encoder), weights=None)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(self.encoder.out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.encoder(x)[-1]).flatten(1))


@functools.lru_cache(maxsize=64)
def classifier_parameters(encoder: str, num_classes: int) -> tuple[int, int]:
    """Parameter counts of :class:`Classifier` and of its encoder (what the zoo gets), built
    on the meta device (nothing allocated)."""
    whole = meta_parameters(lambda: Classifier(encoder, num_classes))
    return whole, meta_parameters(lambda: Classifier(encoder, num_classes).encoder)


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
    """Augmented images of a split, decoded per sample (in the loader's workers); sample ``i``
    of an epoch depends only on (seed, i). Items are ``(C, size, size)`` uint8 tensors, C = 1
    for grey images (augmented as one channel) or 3, and int labels; batch them with
    :func:`collate_images`. ``images`` (decoded HxWx1|3 arrays, in the split's order) skips
    decoding, for measurements against an in-memory dataset."""

    def __init__(
        self,
        split: ClassifySplit,
        augment: A.Compose,
        *,
        seed: int,
        length: int = 0,
        images: Sequence[np.ndarray] | None = None,
    ):
        self.split, self.augment, self.seed, self.images = split, augment, seed, images
        self.length = length or len(split)
        order = np.random.default_rng(seed).permutation(max(self.length, len(split)))
        self.order = order % len(split)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        k = int(self.order[index])
        sample_seed = int(np.random.default_rng([self.seed, index]).integers(2**31))
        seed_augmentation(self.augment, sample_seed)
        image = self.images[k] if self.images is not None else self._decode(k)
        image = torch.from_numpy(self.augment(image=image)["image"]).permute(2, 0, 1)
        return image.contiguous(), int(self.split.labels[k])

    def _decode(self, k: int) -> np.ndarray:
        try:
            return read_pixels(self.split.paths[k])
        except ImageProblem as err:  # changed since the header check, or damaged after it
            raise DataError([f"{self.split.paths[k]}: {err}"]) from None


def collate_images(
    items: Sequence[tuple[torch.Tensor, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, C, H, W)`` uint8 and ``(N,)`` labels. An all-grey batch stays one channel: a
    third of the bytes between loader workers and the training process (and to a GPU); the
    normalisation (:meth:`Runtime.prepare`) broadcasts it to 3 channels. In a mixed batch the
    grey images are replicated."""
    images = [image for image, _ in items]
    if len({image.shape[0] for image in images}) > 1:
        images = [image.expand(3, -1, -1) for image in images]
    return torch.stack(images), torch.tensor([label for _, label in items], dtype=torch.long)


def loader_worker_init(_worker_id: int) -> None:
    """In each DataLoader worker: OpenCV on one thread. A worker is one of several decoding
    processes per training process; OpenCV's own thread pool (one per core) in each of them
    oversubscribes the cores."""
    cv2.setNumThreads(1)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    """How many rows have their label among the ``k`` highest logits."""
    k = min(k, logits.shape[1])
    return int((logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum())


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, rt: Runtime) -> tuple[float, float, float]:
    """(mean loss, top-1, top-5) over a loader (over all ranks' loaders under DDP)."""
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
    if torch.distributed.is_initialized():  # each rank saw its shard: sum over all of them
        sums = torch.tensor([loss, top1, top5, n], dtype=torch.float64, device=rt.device)
        torch.distributed.all_reduce(sums)
        loss, top1, top5, n = sums.tolist()
    return check_finite("val_loss", loss / n), top1 / n, top5 / n
