"""Reading images and masks: TIFF through tifffile (16-bit, float, multi-page), the rest Pillow.

:func:`read_image` returns an HxWx3 uint8 array and a note saying what was done to get there
(e.g. "16-bit grey scaled by its 0.1-99.9 percentiles to uint8, replicated to 3 channels").
Problems a user can fix raise :class:`ImageProblem` whose message is the rule broken; callers
prefix the file name.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"})
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
PERCENTILES = (0.1, 99.9)


class ImageProblem(ValueError):
    """A file that cannot be used; ``str()`` is the rule, without the file name."""


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def decode(path: Path, *, colour: bool = True) -> tuple[np.ndarray, int]:
    """The first page of an image file as stored, and the number of pages.

    ``colour=False`` keeps palette images as their indices (index masks) instead of RGB.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageProblem(f"cannot read file ({_short(err)})") from None
    return decode_bytes(data, suffix=path.suffix, colour=colour)


def decode_bytes(data: bytes, *, suffix: str, colour: bool = True) -> tuple[np.ndarray, int]:
    """:func:`decode` of a file's bytes (read from a disk or an object store)."""
    if not data:
        raise ImageProblem("empty file (0 bytes)")
    if data[:4] in TIFF_MAGIC:
        return _decode_tiff(data)
    try:
        img = Image.open(io.BytesIO(data))
    except OSError as err:  # UnidentifiedImageError is an OSError too
        if not isinstance(err, UnidentifiedImageError):
            raise ImageProblem(f"unreadable or truncated image ({_short(err)})") from None
        raise ImageProblem(
            f"not an image: the content is no known image format (extension {suffix})"
        ) from None
    try:
        img.load()
        pages = getattr(img, "n_frames", 1)
        if img.mode in ("P", "PA") and colour:
            img = img.convert("RGBA")
        elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            img = img.convert("RGB")
        return np.asarray(img), pages
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageProblem(f"unreadable or truncated image ({_short(err)})") from None


def _decode_tiff(data: bytes) -> tuple[np.ndarray, int]:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = len(tif.pages)
            page = tif.pages[0]
            arr = page.asarray()
            planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
            if planar and page.samplesperpixel > 1 and arr.ndim == 3:  # (C, H, W)
                arr = np.moveaxis(arr, 0, -1)
    except Exception as err:  # tifffile raises many types for damaged files
        raise ImageProblem(f"unreadable or truncated TIFF ({_short(err)})") from None
    return arr, pages


def _short(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}"[:120]


def read_image(path: Path) -> tuple[np.ndarray, str]:
    """An HxWx3 uint8 image and a note of the conversion; raises :class:`ImageProblem`."""
    raw, pages = decode(path, colour=True)
    image, note = to_rgb8(raw)
    if pages > 1:
        note += f", first of {pages} pages"
    return image, note


def to_rgb8(raw: np.ndarray) -> tuple[np.ndarray, str]:
    """Convert any depth and channel count to HxWx3 uint8, saying what was done."""
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.ndim != 3 or min(raw.shape[:2]) < 1:
        raise ImageProblem(f"unsupported image shape {raw.shape}; expected HxW or HxWxC")
    channels = raw.shape[-1]
    if np.issubdtype(raw.dtype, np.floating) and not np.isfinite(raw).all():
        bad = int((~np.isfinite(raw)).sum())
        raise ImageProblem(f"float image has {bad} NaN/inf values")
    layout, picked = _pick_channels(raw, channels)
    if picked.min() == picked.max():
        raise ImageProblem(f"constant image (every pixel is {picked.flat[0]})")
    depth, scaling, out = _to_uint8(picked)
    parts = [f"{depth} {layout}"]
    if scaling:
        parts.append(scaling)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
        parts.append("replicated to 3 channels")
    return np.ascontiguousarray(out), ", ".join(parts)


def _pick_channels(raw: np.ndarray, channels: int) -> tuple[str, np.ndarray]:
    if channels == 1:
        return "grey", raw
    if channels == 2:
        return "grey+alpha, alpha dropped", raw[..., :1]
    if channels == 3:
        return "RGB", raw
    if channels == 4:
        return "RGBA, alpha dropped", raw[..., :3]
    return f"{channels}-channel, first 3 channels used", raw[..., :3]


def _to_uint8(arr: np.ndarray) -> tuple[str, str, np.ndarray]:
    """``(depth, scaling note, uint8 array)``."""
    kind, bits = arr.dtype.kind, arr.dtype.itemsize * 8
    if arr.dtype == np.uint8:
        return "8-bit", "", arr
    if arr.dtype == np.bool_:
        return "1-bit", "scaled to 0/255", arr.astype(np.uint8) * 255
    name = {"f": f"{bits}-bit float", "i": f"{bits}-bit signed"}.get(kind, f"{bits}-bit")
    lo, hi = (float(v) for v in np.percentile(arr, PERCENTILES))
    how = f"scaled by its {PERCENTILES[0]:g}-{PERCENTILES[1]:g} percentiles to uint8"
    if hi <= lo:  # nearly constant: the percentiles coincide, use the full range
        lo, hi = float(arr.min()), float(arr.max())
        how = "scaled by its min-max to uint8"
    scaled = (arr.astype(np.float32) - lo) * np.float32(255.0 / (hi - lo))
    return name, how, np.clip(scaled, 0, 255).round().astype(np.uint8)


def read_mask(path: Path, *, colour: bool) -> np.ndarray:
    """A mask as stored (HxW indices or HxWxC colours); raises :class:`ImageProblem`."""
    raw, _ = decode(path, colour=colour)
    if np.issubdtype(raw.dtype, np.floating):
        raise ImageProblem("mask has float values; store class indices or colours as integers")
    if raw.dtype.kind not in "ub" and raw.min() < 0:
        raise ImageProblem("mask has negative values")
    if raw.dtype == np.bool_:
        raw = raw.astype(np.uint8)
    return raw
