"""An image-folder classification dataset in memory: ``ROOT/{train,val}/<class>/*.png|tif|jpg``.

Classes are the sub-folders of ``train`` (sorted); ``val`` may hold a subset. Every image is
decoded once to HxWx3 uint8 (read-only arrays, ready for Ray's object store) with its label.
Unreadable files are collected and reported together as a :class:`DataError`.

Example::

    data = load_image_folder(Path("micronet-synth"))
    data.classes, len(data.splits["train"].images)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError, UserError
from trainables.data.io import ImageProblem, is_image_name, read_image

SPLITS = ("train", "val")


@dataclass(frozen=True)
class ClassifySplit:
    images: list[np.ndarray]  # HxWx3 uint8, read-only
    labels: np.ndarray  # int64 class indices
    names: list[str]  # "class/file" for messages and per-image results


@dataclass(frozen=True)
class ClassificationData:
    classes: tuple[str, ...]
    splits: dict[str, ClassifySplit]
    label: str  # dataset name recorded in the zoo manifest (the root folder's name)


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_split(folder: Path, classes: tuple[str, ...], problems: list[str]) -> ClassifySplit:
    images, labels, names = [], [], []
    for index, cls in enumerate(classes):
        sub = folder / cls
        if not sub.is_dir():
            continue
        for path in sorted(p for p in sub.iterdir() if p.is_file() and is_image_name(p)):
            try:
                image, _ = read_image(path)
            except ImageProblem as err:
                problems.append(f"{path}: {err}")
                continue
            image.flags.writeable = False
            images.append(image)
            labels.append(index)
            names.append(f"{cls}/{path.name}")
    return ClassifySplit(images, np.asarray(labels, dtype=np.int64), names)


def load_image_folder(root: Path) -> ClassificationData:
    """Decode ``root/train`` and ``root/val`` into memory; one line per problem found."""
    root = Path(root)
    for split in SPLITS:
        if not (root / split).is_dir():
            raise UserError(f"{root / split} not found; expected ROOT/{{train,val}}/<class>/*.png")
    classes = tuple(_class_folders(root / "train"))
    if len(classes) < 2:
        raise UserError(f"{root / 'train'}: need at least 2 class folders, found {len(classes)}")
    extra = sorted(set(_class_folders(root / "val")) - set(classes))
    if extra:
        raise UserError(f"{root / 'val'}: classes {extra} have no folder in train; add or remove")
    problems: list[str] = []
    splits = {split: _read_split(root / split, classes, problems) for split in SPLITS}
    for split, data in splits.items():
        if not data.images:
            problems.append(f"{root / split}: no readable images (.png, .tif, .jpg)")
    if problems:
        raise DataError(problems)
    return ClassificationData(classes, splits, root.resolve().name)
