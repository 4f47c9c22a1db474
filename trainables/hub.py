"""smp's own ImageNet encoder weights, through the Hugging Face hub at smp's pinned revision.

smp 0.6 stores them as safetensors on the hub (``smp-hub/<encoder>.imagenet``); timm encoders
(``tu-``) use timm's default pretrained tag. Offline, a missing cache entry is one line saying
how to provide the weights.
"""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from safetensors.torch import load_file

from core.errors import UserError

_HOW = (
    "fetch them where there is internet with `microsweep weights fetch {encoder} --init "
    "imagenet --to DIR` and set `weights: DIR` (or $MICROSWEEP_WEIGHTS), or pre-populate the "
    "Hugging Face cache (`hf download {repo} model.safetensors config.json --revision {rev}`), "
    "or use init 'local:PATH'"
)


def _offline_error(encoder: str, repo: str, rev: str, err: BaseException) -> UserError:
    how = _HOW.format(encoder=encoder, repo=repo, rev=rev)
    return UserError(
        f"cannot get ImageNet weights for {encoder} from the Hugging Face hub "
        f"({repo}@{rev[:10]}: {type(err).__name__}, offline or not cached); {how}"
    )


def imagenet_state_dict(encoder: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict smp would load for ``encoder``."""
    if encoder.startswith("tu-"):
        return _timm_state_dict(encoder)
    settings = smp.encoders.encoders[encoder]["pretrained_settings"]
    if "imagenet" not in settings:
        offered = ", ".join(sorted(settings)) or "none"
        raise UserError(f"smp has no ImageNet weights for {encoder} (it offers: {offered})")
    repo, rev = settings["imagenet"]["repo_id"], settings["imagenet"]["revision"]
    return load_file(hub_file(encoder, repo, rev, "model.safetensors"), device="cpu")


def hub_file(
    encoder: str, repo: str, rev: str, filename: str, *, local_dir: Path | None = None
) -> str:
    """The local path of ``filename`` of ``repo`` at ``rev``: the HF cache, else a download
    (into the HF cache, or as a plain file under ``local_dir``)."""
    from huggingface_hub import hf_hub_download

    try:  # the cache first: trials on cluster nodes must not each ask the hub
        return hf_hub_download(repo, filename=filename, revision=rev, local_files_only=True)
    except Exception:
        pass
    try:
        return hf_hub_download(repo, filename=filename, revision=rev, local_dir=local_dir)
    except Exception as err:  # hub/network errors come in many types; all mean "not available"
        raise _offline_error(encoder, repo, rev, err) from None


def cached_hub_file(repo: str, rev: str, filename: str) -> str | None:
    """The path of ``filename`` in the local HF cache, or None; never asks the hub."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, revision=rev)
    return found if isinstance(found, str) else None


def _timm_state_dict(encoder: str) -> dict[str, torch.Tensor]:
    arch = encoder[3:]
    try:
        module = smp.encoders.get_encoder(encoder, weights=True)
    except Exception as err:  # timm raises RuntimeError / hub errors when offline
        raise _offline_error(encoder, f"timm/{arch}", "default", err) from None
    return module.state_dict()
