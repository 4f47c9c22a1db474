"""The model factory: any smp decoder with any smp encoder (timm ones through ``tu-`` names).

Names are checked against smp's own registries (never a copy that could drift): decoders are
smp's model classes, encoders are ``smp.encoders.get_encoder_names()`` plus every timm model
under the ``tu-`` prefix. :func:`check_feasible` builds a pair on the ``meta`` device (no memory,
no arithmetic) and runs one shape-only forward, so a sweep can drop the pairs smp refuses
before any trial starts; results are cached per process.

Example::

    model = create_model(decoder="Unet", encoder="resnet18", num_classes=3, init="none")
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path

import segmentation_models_pytorch as smp
import timm
import torch

from core.errors import UserError, unknown_name
from trainables.feasibility import PROBE_SIZE

TIMM_PREFIX = "tu-"


@functools.cache
def _decoder_classes() -> dict[str, type[torch.nn.Module]]:
    # smp's own table; names derived from the classes, so they cannot drift
    return {cls.__name__: cls for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()}


def list_decoders() -> list[str]:
    """smp's decoder (architecture) names, e.g. ``Unet``, ``DeepLabV3Plus``."""
    return sorted(_decoder_classes())


def get_decoder(name: str) -> type[torch.nn.Module]:
    """The smp model class for ``name`` (case-insensitive); unknown names get the choices."""
    classes = _decoder_classes()
    if name in classes:
        return classes[name]
    by_lower = {key.lower(): cls for key, cls in classes.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    raise unknown_name("decoder", name, classes, hint="")


def canonical_decoder(name: str) -> str:
    """The registry spelling of a decoder name (``unet`` -> ``Unet``)."""
    return get_decoder(name).__name__


def list_encoders() -> list[str]:
    """smp's encoder names; any timm model is accepted too as ``tu-<timm name>``."""
    return sorted(smp.encoders.get_encoder_names())


def validate_encoder(name: str) -> str:
    """Return ``name`` if smp can build it; otherwise a one-line error with the nearest match."""
    if name.startswith(TIMM_PREFIX):
        arch = name[len(TIMM_PREFIX) :].split(".", 1)[0]
        if arch and timm.is_model(arch):
            return name
        raise unknown_name(
            "timm encoder",
            name,
            [TIMM_PREFIX + m for m in timm.list_models()],
            hint="any timm.list_models() name works after 'tu-'",
        )
    if name in smp.encoders.encoders:
        return name
    raise unknown_name(
        "encoder", name, list_encoders(), hint="run 'microsweep list encoders'; or use tu-<timm>"
    )


def _build(decoder: str, encoder: str, num_classes: int) -> torch.nn.Module:
    cls = get_decoder(decoder)
    validate_encoder(encoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # smp's `timm-` name notice
        return cls(encoder_name=encoder, encoder_weights=None, classes=num_classes)


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


@functools.cache
def check_feasible(decoder: str, encoder: str, *, size: int = PROBE_SIZE) -> str | None:
    """``None`` if smp can build ``decoder`` with ``encoder`` and run a ``size``² input, else why.

    Unknown names raise :class:`UserError` (a typo is not an infeasible pair). The check
    builds the model on the meta device and runs a shape-only forward, so it costs
    milliseconds to a fraction of a second and allocates no weights. Some decoders need a
    minimum input (PAN's pyramid pools a 64² input down to nothing), hence ``size``.
    """
    get_decoder(decoder)
    validate_encoder(encoder)
    try:
        with torch.device("meta"):
            model = _build(decoder, encoder, num_classes=2)
            model.eval()
            with torch.no_grad():
                model(torch.empty(1, 3, size, size))
    except Exception as err:  # smp signals refusal with ValueError/RuntimeError/AssertionError
        return _reason(err)
    return None


@functools.lru_cache(maxsize=256)
def model_parameters(decoder: str, encoder: str, num_classes: int) -> int:
    """Parameter count of smp's ``decoder`` on ``encoder``, built on the meta device."""
    return meta_parameters(lambda: _build(canonical_decoder(decoder), encoder, num_classes))


def meta_parameters(build: Callable[[], torch.nn.Module]) -> int:
    """Parameter count of the module ``build()`` makes, built on the meta device (no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def create_model(
    *,
    decoder: str,
    encoder: str,
    num_classes: int,
    init: str = "none",
    zoo_dir: Path | None = None,
    cache_dir: Path | None = None,
    weights_dir: Path | None = None,
) -> torch.nn.Module:
    """An smp model with ``num_classes`` output channels and the encoder initialised from ``init``.

    ``init`` is any source of :mod:`trainables.inits` (``none``, ``imagenet``, ``micronet``,
    ``image-micronet``, ``local:PATH``, ``zoo:NAME``). Infeasible pairs raise :class:`UserError`
    with smp's reason.
    """
    from trainables.inits import apply_init  # inits imports this module

    if num_classes < 1:
        raise UserError(f"num_classes must be >= 1, but got {num_classes}")
    reason = check_feasible(canonical_decoder(decoder), encoder)
    if reason is not None:
        raise UserError(f"{decoder} with encoder {encoder!r} is infeasible: {reason}")
    model = _build(decoder, encoder, num_classes)
    apply_init(model, init, encoder, zoo_dir=zoo_dir, cache_dir=cache_dir, weights_dir=weights_dir)
    return model


def encoder_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's tensors of an smp model (or of a bare encoder), detached CPU copies."""
    encoder = getattr(model, "encoder", model)
    return {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
