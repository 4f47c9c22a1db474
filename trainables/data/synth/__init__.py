"""Synthetic datasets written in the same formats as the real data (``microsweep data synth``).

>>> from trainables.data.synth import generate
>>> generate("superalloy", Path("synth/super"), seed=0, size=128)  # doctest: +SKIP

Kinds: ``superalloy`` and ``ebc`` (segmentation, NASA layout plus ``data.yaml``) and
``micronet`` (an image-folder classification set for encoder pretraining). Output is
deterministic for a seed and the arguments (byte-identical files).
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError, unknown_name
from trainables.data.synth import _common, ebc, micronet, superalloy

KINDS: tuple[str, ...] = ("superalloy", "ebc", "micronet")
SEGMENTATION = {"superalloy": superalloy, "ebc": ebc}
#: Defaults sized for tests and the demo: seconds to generate.
DEFAULT_COUNTS = {"train": 8, "val": 3, "test": 3}
DEFAULT_MICRONET_COUNTS = {"train": 24, "val": 8}  # per class


def generate(
    kind: str,
    out: Path,
    *,
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    size: int | None = None,
    different_test: bool = False,
    progress: bool = False,
    overwrite: bool = False,
    n_classes: int | None = None,
    image_format: str = "png",
) -> Path:
    """Write a synthetic dataset of ``kind`` to ``out`` and return ``out``.

    ``out`` must be empty, absent, or a previous synth output of the same kind (whose files
    are replaced); ``overwrite=True`` allows any folder. ``different_test`` adds a test split
    under shifted imaging (segmentation kinds). For ``micronet`` the counts are per class and
    ``n_classes`` takes the first classes of ``micronet.CLASSES`` and ``image_format`` is its
    files' format: ``png`` (compressed) or ``tif`` (uncompressed, as microscopes and the NASA
    benchmark store micrographs: 1.4x the bytes of a 512² PNG, decoded 6x faster).
    """
    if kind not in KINDS:
        raise unknown_name("synthetic dataset kind", kind, KINDS)
    settings = _settings(kind, seed, (n_train, n_val, n_test), size, different_test, n_classes)
    if kind == "micronet":
        settings.extra["format"] = _micronet_format(image_format)
    elif image_format != "png":
        raise UserError(f"`format` applies to micronet only ({kind} writes TIFF), drop it")
    out = Path(out)
    _common.prepare_out(out, kind, overwrite=overwrite)
    module = SEGMENTATION.get(kind, micronet)
    _common.write_dataset(out, settings, module.jobs(out, settings), progress=progress)
    if kind in SEGMENTATION:
        _common.write_data_yaml(out, module.CLASSES)
    return out


def _settings(
    kind: str,
    seed: int,
    counts: tuple[int | None, int | None, int | None],
    size: int | None,
    different_test: bool,
    n_classes: int | None,
) -> _common.Settings:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"`seed` must be an integer >= 0, but got {seed!r}")
    n_train, n_val, n_test = counts
    if kind not in SEGMENTATION:  # micronet: an image folder for pretraining
        return _micronet_settings(seed, n_train, n_val, n_test, size, different_test, n_classes)
    if n_classes is not None:
        raise UserError(f"`n_classes` applies to micronet only, not to {kind!r}")
    split_counts = {
        "train": _common.check_count("n_train", n_train, DEFAULT_COUNTS["train"]),
        "val": _common.check_count("n_val", n_val, DEFAULT_COUNTS["val"]),
        "test": _common.check_count("n_test", n_test, DEFAULT_COUNTS["test"]),
    }
    if different_test:
        split_counts["different_test"] = split_counts["test"]
    module = SEGMENTATION[kind]
    size_ = _common.check_size(size, module.DEFAULT_SIZE)
    return _common.Settings(kind, seed, size_, split_counts, different_test)


def _micronet_settings(
    seed: int,
    n_train: int | None,
    n_val: int | None,
    n_test: int | None,
    size: int | None,
    different_test: bool,
    n_classes: int | None,
) -> _common.Settings:
    if n_test is not None or different_test:
        raise UserError("micronet has train and val splits only; drop --n-test/--different-test")
    n_all = len(micronet.CLASSES)
    chosen = _common.check_count("n_classes", n_classes, n_all)
    if chosen > n_all:
        raise UserError(f"`n_classes` must be <= {n_all} (the micronet classes), but got {chosen}")
    counts = {
        "train": _common.check_count("n_train", n_train, DEFAULT_MICRONET_COUNTS["train"]),
        "val": _common.check_count("n_val", n_val, DEFAULT_MICRONET_COUNTS["val"]),
    }
    size_ = _common.check_size(size, micronet.DEFAULT_SIZE)
    extra = {"classes": list(micronet.CLASSES)[:chosen]}
    return _common.Settings("micronet", seed, size_, counts, False, extra)


def _micronet_format(image_format: str) -> str:
    if image_format not in micronet.FORMATS:
        raise unknown_name("micronet image format", image_format, micronet.FORMATS)
    return image_format


__all__ = ["KINDS", "generate"]
