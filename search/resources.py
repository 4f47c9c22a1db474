"""Resources per trial, including the ``gpu: auto`` rule.

``gpu: auto`` gives each trial a share of one GPU from its encoder's parameter count, so that
small encoders pack several trials per GPU and large ones get a GPU of their own:

==========================  =========
encoder parameters          GPU share
==========================  =========
under 15 M (resnet18/34,    0.25
mobilenet_v2, efficientnet-
b0..b3)
15 M to 40 M (resnet50,     0.5
resnext50, densenet161...)
40 M and more (resnet152,   1
senet154, resnext101...)
==========================  =========

On a cluster without GPUs ``auto`` means 0 (trials train on CPU). Parameters are counted on
PyTorch's ``meta`` device: no memory, no weights, no download.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from search.experiment import Resources

AUTO_RULE = ((15e6, 0.25), (40e6, 0.5))  # (parameters below, share); larger: 1 GPU


@functools.lru_cache(maxsize=256)
def encoder_parameters(encoder: str) -> int:
    """Parameter count of smp's ``encoder``, built on the meta device."""
    import segmentation_models_pytorch as smp
    import torch

    with torch.device("meta"):
        model = smp.encoders.get_encoder(encoder, in_channels=3, depth=5, weights=None)
    return sum(p.numel() for p in model.parameters())


def auto_gpu_share(encoder: str) -> float:
    params = encoder_parameters(encoder)
    for limit, share in AUTO_RULE:
        if params < limit:
            return share
    return 1.0


def trial_resources(res: Resources, *, gpus_available: bool) -> Callable[[Mapping[str, Any]], dict]:
    """A function config -> ``{"cpu": .., "gpu": ..}`` for ``tune.with_resources``."""

    def resources(config: Mapping[str, Any]) -> dict[str, float]:
        gpu = res.gpu
        if gpu == "auto":
            gpu = auto_gpu_share(config.get("encoder", "resnet18")) if gpus_available else 0.0
        return {"cpu": res.cpu, "gpu": float(gpu)}

    return resources
