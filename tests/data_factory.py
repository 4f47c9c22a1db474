"""Tiny dataset files for the data tests (written with Pillow and tifffile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

SIZE = 32


def write(path: Path, arr: np.ndarray) -> Path:
    """Write an array as PNG (Pillow) or TIFF (tifffile), by extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        tifffile.imwrite(path, arr)
    else:
        Image.fromarray(arr).save(path)
    return path


def grey_rgb(seed: int, size: int = SIZE) -> np.ndarray:
    grey = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def ebc_mask(seed: int, size: int = SIZE) -> np.ndarray:
    """Index mask: 0 top, 1 a band, 2 a few crack pixels."""
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[size // 2 :, :] = 1
    mask[size // 2 + 1, : 2 + seed % 3] = 2
    return mask


def superalloy_mask(image: np.ndarray) -> np.ndarray:
    """RGBA overlay: the image's grey values, a blue square, a red square."""
    h, w = image.shape[:2]
    mask = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    mask[: h // 2, : w // 2, :3] = (0, 0, 255)
    mask[-4:, -4:, :3] = (255, 0, 0)
    return mask


def ebc_dataset(
    root: Path, *, counts: dict[str, int] | None = None, ext: str = ".png", stem: str = "img"
) -> Path:
    """NASA layout with EBC-style masks named like their images."""
    counts = counts or {"train": 2, "val": 1, "test": 1}
    seed = 0
    for split, n in counts.items():
        for i in range(n):
            name = f"{stem}{split}{i}{ext}"
            write(root / split / name, grey_rgb(seed))
            write(root / f"{split}_annot" / name, ebc_mask(seed))
            seed += 1
    return root


def superalloy_dataset(root: Path, *, counts: dict[str, int] | None = None) -> Path:
    """NASA layout with RGBA overlay masks named NAME_mask.tif."""
    counts = counts or {"train": 2, "val": 1, "test": 1}
    seed = 100
    for split, n in counts.items():
        for i in range(n):
            image = grey_rgb(seed)
            write(root / split / f"s{split}{i}.tif", image)
            write(root / f"{split}_annot" / f"s{split}{i}_mask.tif", superalloy_mask(image))
            seed += 1
    return root


def flat_dataset(root: Path, n: int = 10) -> Path:
    for i in range(n):
        write(root / "images" / f"f{i:02d}.png", grey_rgb(i))
        write(root / "masks" / f"f{i:02d}.png", ebc_mask(i))
    return root
