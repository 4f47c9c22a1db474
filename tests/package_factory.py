"""Model packages from freshly initialised smp models, for the package and predict tests."""

from __future__ import annotations

from pathlib import Path

import torch

from trainables.models import create_model
from trainables.package import write_package

CLASSES = [
    {"name": "matrix", "index": 0, "values": [], "colour": [0, 0, 0]},
    {"name": "secondary", "index": 1, "values": [[0, 0, 255]], "colour": [0, 0, 255]},
    {"name": "tertiary", "index": 2, "values": [[255, 0, 0]], "colour": [255, 0, 0]},
]


def fresh_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(decoder="Unet", encoder="resnet18", num_classes=len(CLASSES)).eval()


def make_package(out: Path, *, seeds: tuple[int, ...] = (0,), tile: int = 64) -> Path:
    members = [fresh_model(s).state_dict() for s in seeds]
    meta = {
        "encoder": "resnet18",
        "decoder": "Unet",
        "classes": CLASSES,
        "tile": tile,
        "overlap": 16,
        "batch": 4,
        "provenance": {"dataset": "planted", "members": [{"seed": s} for s in seeds]},
    }
    return write_package(out, members=members, meta=meta)
