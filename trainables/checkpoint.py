"""Trial checkpoints: one ``state.pt`` holding everything needed to continue exactly.

Contents: model, optimiser, grad scaler, schedule state, epoch, the best model's weights
(omitted when the current model *is* the best, to halve the size) and the RNG states of
python, numpy and torch, all as tensors and plain values so ``torch.load(weights_only=True)``
reads them: a checkpoint never runs code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.errors import UserError

STATE_FILE = "state.pt"
FORMAT = 1


@dataclass
class TrialState:
    """What a checkpoint restores; ``best_model`` None means "the current model"."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    best_model: dict[str, torch.Tensor] | None = None
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the trial config, for humans

    def best_weights(self) -> dict[str, torch.Tensor]:
        return self.model if self.best_model is None else self.best_model


def rng_state() -> dict[str, Any]:
    """Python, numpy (legacy global) and torch RNG states as tensors."""
    np_state = np.random.get_state(legacy=False)
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(random.getstate()[1], dtype=torch.int64),
        "numpy_key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(np_state["state"]["pos"]),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "python" in state:
        random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None))
    if "numpy_key" in state:
        key = state["numpy_key"].numpy().astype(np.uint32)
        np.random.set_state(("MT19937", key, int(state["numpy_pos"]), 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder: Path, state: TrialState) -> Path:
    """Write ``folder/state.pt``; returns its path.

    ``folder`` is a fresh scratch folder that Ray copies to storage once the epoch is
    reported, and nothing reads it before: no temp file or fsync is needed here (they cost
    0.16-0.35 s per epoch for Unet-resnet18 with Adam, 172 MB, on the 2-core machine).
    """
    path = Path(folder) / STATE_FILE
    torch.save({"format": FORMAT, **state.__dict__}, path)
    return path


def load(folder: Path, *, map_location: str | torch.device = "cpu") -> TrialState:
    """Read a checkpoint folder written by :func:`save` (tensors and plain values only)."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise UserError(f"{path}: no trial state in this checkpoint; was it written by microsweep?")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: unreadable checkpoint ({first})") from err
    if payload.pop("format", None) != FORMAT:
        raise UserError(f"{path}: unknown checkpoint format; start the trial afresh")
    return TrialState(**payload)
