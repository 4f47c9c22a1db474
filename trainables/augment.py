"""Training augmentation presets (albumentations) and the input normalisation.

One registry: ``PRESETS`` maps a preset name to a builder ``(crop, random_resize) -> Compose``.
Every preset ends with a random crop of ``crop`` pixels (padding by reflection first when an
image is smaller). Normalisation is fixed ImageNet mean/std on [0, 1] inputs, what smp's
encoders were pretrained with (smp 0.6's ``get_preprocessing_fn`` needs the hub, so the
constants live here).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import albumentations as A
import cv2
import numpy as np
import torch

from core.errors import unknown_name

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Builder = Callable[[int, float], A.Compose]
PRESETS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def wrap(fn: Builder) -> Builder:
        if name in PRESETS:
            raise ValueError(f"augment preset {name!r} registered twice")
        PRESETS[name] = fn
        return fn

    return wrap


def list_presets() -> list[str]:
    return sorted(PRESETS)


def create_augmentation(name: str, *, crop: int, random_resize: float = 0.0) -> A.Compose:
    """The preset ``name`` producing ``crop``x``crop`` image/mask pairs."""
    if name not in PRESETS:
        raise unknown_name("augment preset", name, PRESETS)
    return PRESETS[name](crop, random_resize)


def _crop(crop: int, random_resize: float) -> list[A.BasicTransform]:
    out: list[A.BasicTransform] = []
    if random_resize > 0:
        out.append(
            A.RandomScale(
                scale_limit=(-random_resize, random_resize),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                p=1.0,
            )
        )
    out.append(A.PadIfNeeded(crop, crop, border_mode=cv2.BORDER_REFLECT_101))
    out.append(A.RandomCrop(crop, crop))
    return out


def _photometric() -> list[A.BasicTransform]:
    return [
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        A.RandomGamma(gamma_limit=(80, 120), p=0.3),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.Sharpen()], p=0.3),
    ]


@register("superalloy")
def _superalloy(crop: int, random_resize: float) -> A.Compose:
    """Isotropic micrographs: any flip or right-angle rotation is a valid sample."""
    geometric = [A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90()]
    return A.Compose(_crop(crop, random_resize) + geometric + _photometric())


@register("ebc")
def _ebc(crop: int, random_resize: float) -> A.Compose:
    """Coating cross-sections have an up and a down: horizontal flips only."""
    return A.Compose([*_crop(crop, random_resize), A.HorizontalFlip(), *_photometric()])


@register("none")
def _none(crop: int, random_resize: float) -> A.Compose:
    return A.Compose(_crop(crop, random_resize))


def seed_augmentation(augment: A.Compose, seed: int) -> None:
    """Make ``augment``'s next call depend on ``seed`` only (a sample is reproducible from its
    index, in any loader worker). Its transforms share one generator pair and draw from it in
    turn: albumentations' ``set_random_seed`` gives every transform its own generator with the
    same seed, so each one's first draw is the same number (a horizontal flip happened exactly
    when the vertical one did, and when the crop started in the top half)."""
    augment.set_random_state(np.random.default_rng(seed), random.Random(seed))


def normalize(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` uint8 (or 0-255 float) batch -> float, ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images.float() - mean) / std


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Grey ``(H, W)`` or RGBA images as ``(H, W, 3)`` uint8."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]
