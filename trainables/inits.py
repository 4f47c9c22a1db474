"""Init sources for encoders, as one registry: where an encoder's starting weights come from.

==================  =====================================================================
``none``            random, as smp initialises (torchvision/timm defaults, Kaiming convs)
``imagenet``        smp's own ImageNet weights, from the Hugging Face hub at smp's pinned
                    revision (timm's default pretrained tag for ``tu-`` encoders)
``micronet``        NASA's MicroNet encoders (random -> MicroNet), downloaded once
``image-micronet``  NASA's ImageNet -> MicroNet encoders, downloaded once
``local:PATH``      a ``.safetensors`` or ``.pth`` state dict on disk
``zoo:NAME``        an encoder exported by ``microsweep pretrain`` (a bare zoo name works too)
==================  =====================================================================

Downloads land in a cache folder (``$MICROSWEEP_CACHE`` or ``~/.cache/microsweep``), written
atomically, and each file's full SHA-256 is recorded in ``manifest.json`` on first download
(or pinned in :data:`PINNED_SHA256`); a later mismatch is refused. Weights load with
``torch.load(weights_only=True)`` or safetensors, so a pickle carrying code is refused.

Example::

    state = resolve_init("micronet", "resnet18", zoo_dir=None, cache_dir=None)
    apply_init(model, "zoo:r18-micro", "resnet18", zoo_dir=Path("zoo"))
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from core.errors import UserError, unknown_name
from trainables.weights_cache import default_cache_dir, fetch

StateDict = dict[str, torch.Tensor]

MICRONET_URL = "https://nasa-public-data.s3.amazonaws.com/microscopy_segmentation_models/"
MICRONET_URL_ENV = "MICROSWEEP_MICRONET_URL"
ZOO_ENV = "MICROSWEEP_ZOO"

# NASA's published encoders (pretrained-microscopy-models README, v1.0 files).
MICRONET_ENCODERS: tuple[str, ...] = (
    *(f"densenet{n}" for n in (121, 161, 169, 201)),
    *(f"dpn{n}" for n in ("68", "68b", "92", "98", "107", "131")),
    *(f"efficientnet-b{i}" for i in range(6)),
    "inceptionresnetv2",
    "inceptionv4",
    "mobilenet_v2",
    *(f"resnet{n}" for n in (18, 34, 50, 101, 152)),
    "resnext50_32x4d",
    "resnext101_32x8d",
    "se_resnet50",
    "se_resnet101",
    "se_resnet152",
    "se_resnext50_32x4d",
    "se_resnext101_32x4d",
    "senet154",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "xception",
)
IMAGE_MICRONET_ENCODERS: tuple[str, ...] = (
    *MICRONET_ENCODERS,
    "efficientnet-b6",
    "efficientnet-b7",
    "vgg11",
    "vgg13",
)
# Full SHA-256 of published files, once verified on a machine with internet. Files not listed
# are trusted on first download and pinned in the cache manifest from then on.
PINNED_SHA256: dict[str, str] = {}
# Classifier heads that encoders drop (torchvision, pretrainedmodels, efficientnet, timm).
HEAD_PREFIXES = ("fc.", "classifier.", "last_linear.", "_fc.", "head.", "linear.")


@dataclass(frozen=True)
class InitContext:
    """Where an init source may look: the encoder zoo, the download cache, a weights folder."""

    zoo_dir: Path | None
    cache_dir: Path
    weights_dir: Path | None = None  # trainables.weights_dir: fetched files, checked by hash


Resolver = Callable[[str, str, InitContext], StateDict | None]  # (argument, encoder, ctx)


@dataclass(frozen=True)
class InitSource:
    name: str
    summary: str
    resolve: Resolver
    takes_argument: bool = False


_SOURCES: dict[str, InitSource] = {}


def register_init(name: str, summary: str, *, takes_argument: bool = False):
    """Decorator: register a resolver as init source ``name`` (registering twice is an error)."""

    def wrap(func: Resolver) -> Resolver:
        if name in _SOURCES:
            raise ValueError(f"init source {name!r} is registered twice")
        _SOURCES[name] = InitSource(name, summary, func, takes_argument)
        return func

    return wrap


def list_inits() -> list[str]:
    """Registered source names; ``local`` and ``zoo`` take an argument (``local:PATH``)."""
    return [f"{s.name}:…" if s.takes_argument else s.name for s in _SOURCES.values()]


def describe_inits() -> dict[str, str]:
    """``{name: one-line summary}`` for ``microsweep list inits``."""
    return {s.name: s.summary for s in _SOURCES.values()}


def resolve_zoo_dir(zoo_dir: Path | None) -> Path | None:
    """``zoo_dir`` or ``$MICROSWEEP_ZOO`` (None when neither is set)."""
    if zoo_dir is not None:
        return Path(zoo_dir)
    env = os.environ.get(ZOO_ENV)
    return Path(env) if env else None


def parse_init(init: str, zoo_dir: Path | None = None) -> tuple[InitSource, str]:
    """Split ``init`` into its source and argument; a bare name found in the zoo means ``zoo:``."""
    head, sep, arg = init.partition(":")
    if sep and head in _SOURCES and _SOURCES[head].takes_argument:
        if not arg:
            raise UserError(f"init {init!r} needs an argument, e.g. '{head}:NAME'")
        return _SOURCES[head], arg
    if not sep and init in _SOURCES and not _SOURCES[init].takes_argument:
        return _SOURCES[init], ""
    zoo = resolve_zoo_dir(zoo_dir)
    if not sep and zoo is not None and zoo.is_dir():
        from trainables.zoo import load_zoo

        names = load_zoo(zoo)
        if init in names:
            return _SOURCES["zoo"], init
        raise unknown_name("init source", init, [*list_inits(), *names], hint="")
    raise unknown_name("init source", init, list_inits(), hint="")


ENCODER_PLACEHOLDER = "{encoder}"


def expand_init(init: str, encoder: str) -> str:
    """Put the trial's encoder into ``init``: ``zoo:micro-{encoder}`` -> ``zoo:micro-resnet18``.

    One init value then names a pretrained encoder per encoder of a sweep.
    """
    return init.replace(ENCODER_PLACEHOLDER, encoder)


def resolve_init(
    init: str,
    encoder: str,
    *,
    zoo_dir: Path | None = None,
    cache_dir: Path | None = None,
    weights_dir: Path | None = None,
) -> StateDict | None:
    """The encoder state dict ``init`` stands for (``None`` for ``none``: keep smp's init).

    Downloading sources look in the weights folder (``weights_dir`` or ``$MICROSWEEP_WEIGHTS``)
    first, then in their cache, and download last.
    """
    from trainables.weights_dir import resolve_weights_dir

    source, arg = parse_init(expand_init(init, encoder), zoo_dir)
    ctx = InitContext(
        resolve_zoo_dir(zoo_dir),
        Path(cache_dir or default_cache_dir()),
        resolve_weights_dir(weights_dir),
    )
    return source.resolve(arg, encoder, ctx)


def apply_init(
    model: torch.nn.Module,
    init: str,
    encoder: str,
    *,
    zoo_dir: Path | None = None,
    cache_dir: Path | None = None,
    weights_dir: Path | None = None,
) -> None:
    """Load the weights ``init`` stands for into ``model.encoder`` (strictly; heads dropped)."""
    state = resolve_init(
        init, encoder, zoo_dir=zoo_dir, cache_dir=cache_dir, weights_dir=weights_dir
    )
    if state is not None:
        load_encoder_weights(getattr(model, "encoder", model), state, source=init)


# ---------------------------------------------------------------- loading and checking


def load_weights_file(path: Path) -> StateDict:
    """A state dict from ``.safetensors`` or a torch file, refusing pickles that carry code."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} not found")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as err:
            raise UserError(f"{path}: not a valid safetensors file ({err})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"refusing to load {path}: not a plain weights file (weights_only load failed: "
            f"{first[:160]}); convert it to .safetensors from a trusted source"
        ) from None
    return _unwrap(obj, path)


def _unwrap(obj: object, path: Path) -> StateDict:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "encoder"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return dict(obj)


def strip_wrapper_prefixes(state: StateDict) -> StateDict:
    """Drop ``module.`` left by DataParallel (also NASA's ``features.module.`` form)."""
    out: StateDict = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module.") :]
        elif key.startswith("features.module."):
            key = "features." + key[len("features.module.") :]
        out[key] = value
    return out


def _summary(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', …' if len(keys) > limit else ''})"


def load_encoder_weights(encoder: torch.nn.Module, state: StateDict, *, source: str) -> None:
    """Load ``state`` into ``encoder`` strictly; heads are dropped, mismatches named in one line."""
    own = encoder.state_dict()
    state = strip_wrapper_prefixes(state)
    state = {k: v for k, v in state.items() if k in own or not k.startswith(HEAD_PREFIXES)}
    try:
        encoder.load_state_dict(dict(state))  # smp's overrides rename legacy keys (densenet)
    except RuntimeError:
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        raise UserError(
            f"weights from init {source!r} do not fit encoder {type(encoder).__name__}: "
            f"missing {_summary(missing)}, unexpected {_summary(unexpected)}, "
            f"wrong shape {_summary(shape)}; check that they were saved for this encoder"
        ) from None


# ---------------------------------------------------------------- the sources


@register_init("none", "random initialisation, as smp builds the model")
def _none(arg: str, encoder: str, ctx: InitContext) -> StateDict | None:
    return None


@register_init("imagenet", "smp's ImageNet weights from the Hugging Face hub (pinned revision)")
def _imagenet(arg: str, encoder: str, ctx: InitContext) -> StateDict | None:
    from trainables.hub import imagenet_state_dict

    folder_copy = _from_weights_dir(ctx, "imagenet", encoder)
    return load_weights_file(folder_copy) if folder_copy else imagenet_state_dict(encoder)


def _from_weights_dir(ctx: InitContext, init: str, encoder: str) -> Path | None:
    if ctx.weights_dir is None or encoder.startswith("tu-"):
        return None
    from trainables.weights_dir import weights_file

    return weights_file(ctx.weights_dir, init, encoder)


def micronet_url(encoder: str, source: str, base_url: str | None = None) -> str:
    """The URL of NASA's ``source`` (``micronet``/``image-micronet``) weights for ``encoder``."""
    available = MICRONET_ENCODERS if source == "micronet" else IMAGE_MICRONET_ENCODERS
    if encoder not in available:
        raise unknown_name(f"{source} encoder", encoder, available, hint="NASA published these")
    base = base_url or os.environ.get(MICRONET_URL_ENV) or MICRONET_URL
    stem = "resnext101" if encoder == "resnext101_32x8d" else encoder  # NASA's file name
    version = "1.1" if (encoder, source) == ("resnet50", "micronet") else "1.0"
    dataset = "microscopynet" if source == "micronet" else "imagenet-microscopynet"
    return f"{base.rstrip('/')}/{stem}_pretrained_{dataset}_v{version}.pth.tar"


def _nasa(kind: str) -> Resolver:
    def resolve(arg: str, encoder: str, ctx: InitContext) -> StateDict:
        url = micronet_url(encoder, kind)
        folder_copy = _from_weights_dir(ctx, kind, encoder)
        if folder_copy:
            return load_weights_file(folder_copy)
        path = fetch(url, ctx.cache_dir, sha256=PINNED_SHA256.get(url.rsplit("/", 1)[-1]))
        return load_weights_file(path)

    return resolve


register_init("micronet", "NASA's MicroNet encoder (random -> MicroNet), downloaded once")(
    _nasa("micronet")
)
register_init("image-micronet", "NASA's ImageNet -> MicroNet encoder, downloaded once")(
    _nasa("image-micronet")
)


@register_init("local", "a .safetensors or .pth state dict: local:PATH", takes_argument=True)
def _local(arg: str, encoder: str, ctx: InitContext) -> StateDict:
    return load_weights_file(Path(arg).expanduser())


@register_init("zoo", "an encoder exported by 'microsweep pretrain': zoo:NAME", takes_argument=True)
def _zoo(arg: str, encoder: str, ctx: InitContext) -> StateDict:
    from trainables.zoo import load_zoo_weights

    if ctx.zoo_dir is None:
        raise UserError(f"init 'zoo:{arg}' needs a zoo folder: pass zoo_dir or set ${ZOO_ENV}")
    entry, state = load_zoo_weights(ctx.zoo_dir, arg)
    if entry.encoder != encoder:
        raise UserError(
            f"zoo entry {arg!r} holds a {entry.encoder} encoder, but the model uses {encoder}"
        )
    return state


def check_available(
    init: str, encoder: str, *, zoo_dir: Path | str | None = None, cache_dir: Path | None = None
) -> str | None:
    """Why ``init`` has no weights for ``encoder`` (one line), or None; downloads nothing.

    Unknown source names raise :class:`UserError` (a typo is not an unavailable source).
    """
    zoo = Path(zoo_dir) if zoo_dir else None
    source, arg = parse_init(expand_init(init, encoder), zoo)
    try:
        if source.name in ("micronet", "image-micronet"):
            micronet_url(encoder, source.name)
        elif source.name == "imagenet":
            return _imagenet_reason(encoder)
        elif source.name == "local" and not Path(arg).expanduser().is_file():
            return f"weights file {arg} not found"
        elif source.name == "zoo":
            _zoo_reason(arg, encoder, resolve_zoo_dir(zoo))
    except UserError as err:
        return str(err)
    return None


def _imagenet_reason(encoder: str) -> str | None:
    if encoder.startswith("tu-"):
        import timm

        arch = encoder[3:]
        return None if timm.models.is_model_pretrained(arch) else f"timm has no weights for {arch}"
    import segmentation_models_pytorch as smp

    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {})
    return None if "imagenet" in settings else f"smp has no ImageNet weights for {encoder}"


def _zoo_reason(name: str, encoder: str, zoo_dir: Path | None) -> None:
    from trainables.zoo import get_zoo_entry

    if zoo_dir is None:
        raise UserError(f"init 'zoo:{name}' needs a zoo folder: pass zoo_dir or set ${ZOO_ENV}")
    entry = get_zoo_entry(zoo_dir, name)
    if entry.encoder != encoder:
        raise UserError(f"zoo entry {name!r} holds a {entry.encoder} encoder, not {encoder}")
