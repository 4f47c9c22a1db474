"""The model package: a folder a colleague can be mailed, loaded without unpickling anything.

Layout (``FORMAT`` 1)::

    DIR/model.safetensors   tensors only; member ``i`` of an ensemble under ``member{i}.<key>``
    DIR/model.json          encoder, decoder, classes (mask values, display colours),
                            normalisation, tile/overlap defaults, provenance, package versions
    DIR/README.txt          what it is and the predict command

Example::

    model = load_model("runs/super1/model")
    mask = model.predict(image)             # HxW uint8 class indices
    mask = model.predict(image, tta=True)   # mean of flips

:func:`write_package` writes one (``search.export`` fills in the provenance from a run folder).
A package whose tensors do not fit its ``model.json`` (one missing, an extra one, a wrong shape)
is refused with one line naming the tensor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import storage
from core.errors import UserError
from trainables.augment import IMAGENET_MEAN, IMAGENET_STD
from trainables.runtime import Runtime, resolve_runtime
from trainables.tiling import predict_logits

FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
README_FILE = "README.txt"
NORMALISATION = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "scale": 255.0}
VERSIONED = ("microsweep", "torch", "segmentation-models-pytorch", "timm", "safetensors")
# flips of (H, W) dims for --tta flip: identity, horizontal, vertical, both
FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def package_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def member_key(index: int, key: str) -> str:
    return f"member{index}.{key}"


def write_package(
    out: str | Path, *, members: Sequence[dict[str, torch.Tensor]], meta: dict[str, Any]
) -> Path:
    """Write ``model.safetensors``, ``model.json`` and ``README.txt`` into ``out``.

    ``meta`` holds at least ``encoder``, ``decoder`` and ``classes`` (a list of ``{"name",
    "index", "values", "colour"}``); ``format``, ``members`` count, normalisation and versions
    are added here.
    """
    from safetensors.torch import save

    tensors = {
        member_key(i, k): v.detach().cpu().contiguous()
        for i, weights in enumerate(members)
        for k, v in weights.items()
    }
    full = {
        "format": FORMAT,
        **meta,
        "num_members": len(members),
        "normalisation": NORMALISATION,
        "versions": package_versions(),
    }
    out = Path(out)
    storage.write_bytes(out / WEIGHTS_FILE, save(tensors))
    storage.write_json(out / META_FILE, full)
    storage.write_bytes(out / README_FILE, readme(out, full).encode())
    return out


def readme(out: Path, meta: dict[str, Any]) -> str:
    classes = ", ".join(c["name"] for c in meta["classes"])
    kind = f"an ensemble of {meta['num_members']}" if meta["num_members"] > 1 else "one model"
    return (
        f"microsweep segmentation model: {meta['decoder']} with encoder {meta['encoder']} "
        f"({kind}), classes: {classes}.\n"
        f"Trained on dataset {meta.get('provenance', {}).get('dataset')!s}; "
        "details in model.json.\n\n"
        f"Segment micrographs (masks, overlays, phase fractions, particle sizes):\n"
        f"  microsweep predict {out} IMAGES... --out predictions\n"
        f"Python:\n"
        f"  from trainables.package import load_model\n"
        f"  mask = load_model('{out}').predict(image)\n"
    )


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not a model package (no {META_FILE}); export one with "
                        "'microsweep export RUN --out DIR'")  # fmt: skip
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable model description ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path}: unknown model package format; re-export it with this version")
    if meta.get("normalisation") != NORMALISATION:
        raise UserError(f"{path}: normalisation {meta.get('normalisation')} is not supported")
    return meta


@dataclass(frozen=True)
class Prediction:
    """Class indices of the (ensemble's mean) prediction and of each member."""

    mask: np.ndarray  # HxW uint8
    member_masks: list[np.ndarray]  # one per member (just ``[mask]`` for one model)


class SegmentationModel:
    """A loaded package: ``predict(image)`` gives class indices; see :func:`load_model`."""

    def __init__(self, meta: dict[str, Any], models: list[torch.nn.Module], runtime: Runtime):
        self.meta, self.models, self.runtime = meta, models, runtime
        self.classes: list[str] = [c["name"] for c in meta["classes"]]
        self.colours: list[tuple[int, int, int]] = [tuple(c["colour"]) for c in meta["classes"]]
        self.tile = int(meta.get("tile", 1024))
        self.overlap = int(meta.get("overlap", 128))
        self.batch = int(meta.get("batch", 4))

    def probabilities(self, image: np.ndarray, *, tta: bool = False) -> list[torch.Tensor]:
        """``(C, H, W)`` softmax probabilities per member for an HxWx3 uint8 image."""
        flips = FLIPS if tta else FLIPS[:1]
        out = []
        for model in self.models:
            total = None
            for dims in flips:
                view = np.flip(image, axis=tuple(d - 1 for d in dims)) if dims else image
                logits = predict_logits(
                    model, np.ascontiguousarray(view), num_classes=len(self.classes),
                    runtime=self.runtime, tile=self.tile, overlap=self.overlap, batch=self.batch,
                )  # fmt: skip
                probs = torch.softmax(logits, dim=0)
                probs = torch.flip(probs, dims) if dims else probs
                total = probs if total is None else total + probs
            out.append(total / len(flips))
        return out

    def predict_all(self, image: np.ndarray, *, tta: bool = False) -> Prediction:
        """The mean prediction and each member's (for an ensemble's spread)."""
        image = _as_rgb8(image)
        probs = self.probabilities(image, tta=tta)
        if len(probs) == 1:
            mask = class_indices(probs[0])
            return Prediction(mask, [mask])
        mask = class_indices(torch.stack(probs).mean(dim=0))
        return Prediction(mask, [class_indices(p) for p in probs])

    def predict(self, image: np.ndarray, *, tta: bool = False) -> np.ndarray:
        """HxW uint8 class indices for an image of any depth/channels the data layer reads."""
        return self.predict_all(image, tta=tta).mask


def class_indices(probs: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` scores -> HxW uint8 argmax (the first class of a tie, as ``argmax``)."""
    # max(dim=0).indices: ~15x faster than argmax(dim=0) on the CPU for few classes (measured)
    return probs.max(dim=0).indices.numpy().astype(np.uint8)


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    from trainables.data.io import ImageProblem, to_rgb8

    if image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8:
        return image
    try:
        return to_rgb8(np.asarray(image))[0]
    except ImageProblem as err:
        raise UserError(f"image: {err}") from None


def load_model(
    folder: str | Path,
    *,
    device: str | None = None,
    precision: str = "auto",
    optimise: bool = True,
) -> SegmentationModel:
    """Read a package (never unpickling), check every tensor, and place it on ``device``.

    ``device``: ``cpu``, ``cuda``, ``cuda:1`` (default: cuda when available); ``precision``:
    ``auto`` (the runtime's choice: bf16 on CUDA, fp32 on CPUs), ``fp32``, ``bf16``, ``fp16``.
    ``optimise`` (default) readies the models for inference: BatchNorm folded into the
    convolutions and channels_last memory format (also in fp32); ``optimise=False`` keeps
    smp's plain modules as trained (to fine-tune them, or to compare).
    """
    from trainables.inference import fold_batchnorm

    folder = Path(folder)
    meta = read_meta(folder)
    runtime = _runtime(device, precision, channels_last=optimise)
    tensors = _read_tensors(folder / WEIGHTS_FILE)
    models = []
    for i in range(int(meta["num_members"])):
        model = _build(meta)
        _load_member(model, tensors, i, folder / WEIGHTS_FILE)
        models.append(model.eval())
    extra = sorted(set(tensors) - {member_key(i, k) for i, m in enumerate(models)
                                   for k in m.state_dict()})  # fmt: skip
    if extra:
        raise UserError(
            f"{folder / WEIGHTS_FILE}: unexpected tensor '{extra[0]}' ({len(extra)} in all); "
            f"the package does not match its {META_FILE}"
        )
    if optimise:
        models = [fold_batchnorm(m) for m in models]
    return SegmentationModel(meta, [runtime.place(m) for m in models], runtime)


def _runtime(device: str | None, precision: str, *, channels_last: bool) -> Runtime:
    import typing

    from trainables.config import Precision

    if precision not in (choices := typing.get_args(Precision)):
        from core.errors import unknown_name

        raise unknown_name("precision", precision, choices)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine; use cpu")
    # channels_last in fp32 too for inference: oneDNN's NHWC convolutions ran ~1.5x faster on
    # the CPU than NCHW (bench/predict.py); training keeps the runtime's own default
    layout = "true" if channels_last else "auto"
    runtime = resolve_runtime(precision, layout, use_cuda=dev.type == "cuda")
    return Runtime(device=dev, amp_dtype=runtime.amp_dtype, channels_last=runtime.channels_last)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise UserError(f"{path}: missing; the package needs its weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable weights ({str(err).splitlines()[0]})") from None


def _build(meta: dict[str, Any]) -> torch.nn.Module:
    from trainables.models import create_model

    return create_model(
        decoder=meta["decoder"], encoder=meta["encoder"], num_classes=len(meta["classes"])
    )


def _load_member(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], index: int, path: Path
) -> None:
    """Copy member ``index``'s tensors into ``model``; one line naming the first misfit."""
    expected = model.state_dict()
    state = {}
    for key, want in expected.items():
        name = member_key(index, key)
        if name not in tensors:
            raise UserError(f"{path}: tensor '{name}' is missing (package damaged or incomplete)")
        got = tensors[name]
        if tuple(got.shape) != tuple(want.shape):
            raise UserError(
                f"{path}: tensor '{name}' has shape {tuple(got.shape)}, but the model in "
                f"{META_FILE} needs {tuple(want.shape)}"
            )
        state[key] = got.to(want.dtype)
    model.load_state_dict(state, strict=True)
