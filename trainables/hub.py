"""smp's own ImageNet encoder weights, through the Hugging Face hub at smp's pinned revision.

smp 0.6 stores them as safetensors on the hub (``smp-hub/<encoder>.imagenet``); timm encoders
(``tu-``) use timm's default pretrained tag. Offline, a missing cache entry is one line saying
how to provide the weights.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from safetensors.torch import load_file

from core.errors import UserError

_HOW = (
    "pre-populate the Hugging Face cache where there is internet "
    "(`hf download {repo} model.safetensors config.json --revision {rev}`, then copy "
    "$HF_HOME), or use init 'local:PATH'"
)


def _offline_error(encoder: str, repo: str, rev: str, err: BaseException) -> UserError:
    how = _HOW.format(repo=repo, rev=rev)
    return UserError(
        f"cannot get ImageNet weights for {encoder} from the Hugging Face hub "
        f"({repo}@{rev[:10]}: {type(err).__name__}; offline or not cached); {how}"
    )


def imagenet_state_dict(encoder: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict smp would load for ``encoder``."""
    if encoder.startswith("tu-"):
        return _timm_state_dict(encoder)
    from huggingface_hub import hf_hub_download

    settings = smp.encoders.encoders[encoder]["pretrained_settings"]
    if "imagenet" not in settings:
        offered = ", ".join(sorted(settings)) or "none"
        raise UserError(f"smp has no ImageNet weights for {encoder} (it offers: {offered})")
    repo, rev = settings["imagenet"]["repo_id"], settings["imagenet"]["revision"]
    try:  # the cache first: trials on cluster nodes must not each ask the hub
        path = hf_hub_download(
            repo, filename="model.safetensors", revision=rev, local_files_only=True
        )
    except Exception:
        path = None
    try:
        path = path or hf_hub_download(repo, filename="model.safetensors", revision=rev)
    except Exception as err:  # hub/network errors come in many types; all mean "not available"
        raise _offline_error(encoder, repo, rev, err) from None
    return load_file(path, device="cpu")


def _timm_state_dict(encoder: str) -> dict[str, torch.Tensor]:
    arch = encoder[3:]
    try:
        module = smp.encoders.get_encoder(encoder, weights=True)
    except Exception as err:  # timm raises RuntimeError / hub errors when offline
        raise _offline_error(encoder, f"timm/{arch}", "default", err) from None
    return module.state_dict()
