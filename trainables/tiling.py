"""Whole-image inference: one pass when the image fits ``tile``, else batched overlapping tiles.

Tiles are blended with a linear taper over the overlap into a preallocated ``(C, H, W)``
buffer (no per-batch growth), so a pixel's logits are the weighted mean of every tile that
covers it and seams vanish. Images are reflect-padded to a multiple of 32 (what smp's
encoders need) and the result cropped back.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainables.runtime import Runtime

STRIDE = 32


def _ceil(n: int, k: int = STRIDE) -> int:
    return -(-n // k) * k


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile``; the last ends flush."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def taper(tile: int, overlap: int) -> torch.Tensor:
    """``(tile,)`` weights: linear ramp from ~0 to 1 over ``overlap`` pixels at both ends."""
    if overlap == 0:
        return torch.ones(tile)
    i = torch.arange(tile, dtype=torch.float32)
    ramp = torch.minimum(i + 1, tile - i) / (overlap + 1)
    return ramp.clamp(max=1.0)


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    image: np.ndarray,
    *,
    num_classes: int,
    runtime: Runtime,
    tile: int = 1024,
    overlap: int = 128,
    batch: int = 4,
) -> torch.Tensor:
    """Logits ``(C, H, W)`` float32 on the CPU for one ``(H, W, 3)`` uint8 image."""
    h, w = image.shape[:2]
    th, tw = min(_ceil(tile), _ceil(h)), min(_ceil(tile), _ceil(w))
    hp, wp = max(th, h), max(tw, w)
    padded = np.pad(image, ((0, hp - h), (0, wp - w), (0, 0)), mode="reflect")
    # a (3, H, W) view of the HWC pixels: runtime.prepare makes the layout the model wants
    chw = torch.from_numpy(padded).permute(2, 0, 1)
    ys, xs = tile_starts(hp, th, overlap), tile_starts(wp, tw, overlap)
    boxes = [(y, x) for y in ys for x in xs]
    if len(boxes) == 1:  # one tile covers the image: its logits are the answer, no blending
        with runtime.autocast():
            out = model(runtime.prepare(chw[None]))
        return out[0, :, :h, :w].float().cpu().contiguous()
    weight = (
        taper(th, overlap if len(ys) > 1 else 0)[:, None]
        * taper(tw, overlap if len(xs) > 1 else 0)[None, :]
    )
    acc = torch.zeros((num_classes, hp, wp), dtype=torch.float32)
    wsum = torch.zeros((hp, wp), dtype=torch.float32)
    for i in range(0, len(boxes), batch):
        part = boxes[i : i + batch]
        x = torch.stack([chw[:, y : y + th, x0 : x0 + tw] for y, x0 in part])
        with runtime.autocast():
            out = model(runtime.prepare(x))
        out = out.float().cpu()
        for (y, x0), logits in zip(part, out, strict=True):
            acc[:, y : y + th, x0 : x0 + tw] += logits * weight
            wsum[y : y + th, x0 : x0 + tw] += weight
    return (acc / wsum)[:, :h, :w].contiguous()
