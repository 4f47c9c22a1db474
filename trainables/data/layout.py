"""Finding image/mask pairs: NASA layout, flat layout, split files.

- **NASA layout**: ``train/``, ``val/``, ``test/`` (and any other folder ``X/`` with an
  ``X_annot/`` beside it, e.g. ``different_test/``) hold images; ``X_annot/`` holds masks named
  like the image or with ``_mask`` before the extension (any image extension).
- **Flat layout**: ``images/`` and ``masks/`` with matching stems. Without a split file all pairs
  form one split ``all`` (enough for ``data check``; training needs a split file, written by
  ``microsweep data split``).
- **Split files** (YAML)::

      name: Super3
      base: ..            # optional; relative to the split file's folder
      splits:
        train: [{image: Super1/train/a.tif, mask: Super1/train_annot/a_mask.tif}]
        val: [...]

  Without ``base`` each path is looked up relative to the split file's folder, then relative to
  its parent (the shared ``splits/`` folder lies beside the datasets). Absolute paths are kept.

Problems are collected as ``"<file>: <rule>"`` lines: ``errors`` make the dataset unusable,
``warnings`` are reported but the pair is only skipped (a mask without an image).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from core.errors import UserError
from core.yamlio import load_yaml
from trainables.data.io import is_image_name

SPLIT_ORDER = ("train", "val", "test")
ANNOT = "_annot"
MASK_SUFFIX = "_mask"
FLAT_IMAGES, FLAT_MASKS, FLAT_SPLIT = "images", "masks", "all"


FLAT = "flat"  # the layout kind of images/ + masks/


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path
    name: str  # image stem, unique within a split


@dataclass
class Layout:
    kind: str  # "nasa", "flat" or "split file"

    @property
    def is_flat(self) -> bool:
        """images/ + masks/ without splits of their own (a split file assigns them)."""
        return self.kind in (FLAT,)  # a layout form, not a task kind

    root: Path
    label: str
    splits: dict[str, list[Pair]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def show(self, path: Path) -> str:
        """A path as printed in problem lines: relative to the root when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def split_sort_key(name: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


def discover(root: Path, split_file: Path | None = None) -> Layout:
    """The pairs of a dataset folder, or of a split file when one is given."""
    if split_file is not None:
        return read_split_file(split_file, root=root)
    if (root / FLAT_IMAGES).is_dir() and (root / FLAT_MASKS).is_dir():
        layout = Layout(FLAT, root, root.name)
        _match_folder(layout, FLAT_SPLIT, root / FLAT_IMAGES, root / FLAT_MASKS)
        return layout
    names = nasa_split_names(root)
    if not names:
        raise UserError(
            f"'{root}' is not a dataset folder: expected train/ + train_annot/ (NASA layout) "
            "or images/ + masks/ (flat layout)"
        )
    layout = Layout("nasa", root, root.name)
    for name in names:
        annot = root / f"{name}{ANNOT}"
        if not annot.is_dir():
            layout.errors.append(f"{name}/: no mask folder {name}{ANNOT}/ beside it")
            continue
        _match_folder(layout, name, root / name, annot)
    return layout


def held_out_mask_bytes(data: object) -> int:
    """Bytes of the test masks of a ``data:`` block (a DataSpec: ``root``, ``split_file``):
    the size of one trial's predicted masks (PNG); 0 when they cannot be listed (an estimate
    never stops a dry run, the data check reports the problem)."""
    if data is None or not hasattr(data, "root"):
        return 0
    try:
        return _mask_bytes(Path(data.root), getattr(data, "split_file", None))
    except Exception:
        return 0


@functools.lru_cache(maxsize=16)
def _mask_bytes(root: Path, split_file: Path | None) -> int:
    layout = discover(root, split_file)
    tests = [s for s in layout.splits if s not in SPLIT_ORDER[:2]]  # what is not train or val
    return sum(p.mask.stat().st_size for s in tests for p in layout.splits[s])


def nasa_split_names(root: Path) -> list[str]:
    """``train``/``val``/``test`` if present, and every ``X/`` that has an ``X_annot/``."""
    dirs = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    names = {d for d in dirs if not d.endswith(ANNOT) and (d in SPLIT_ORDER or d + ANNOT in dirs)}
    return sorted(names, key=split_sort_key)


def _index(layout: Layout, folder: Path, *, mask: bool) -> dict[str, Path]:
    """Stem -> file for image files in a folder; duplicates and odd files are reported."""
    found: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if not is_image_name(path):
            layout.warnings.append(f"{layout.show(path)}: not an image file name (ignored)")
            continue
        stem = path.stem
        if mask and stem.endswith(MASK_SUFFIX):
            stem = stem[: -len(MASK_SUFFIX)]
        found[stem].append(path)
    index = {}
    for stem, paths in found.items():
        if len(paths) > 1:
            others = ", ".join(p.name for p in paths[1:])
            layout.errors.append(
                f"{layout.show(paths[0])}: duplicate stem {stem!r} (also {others}); "
                "keep one file per name"
            )
        index[stem] = paths[0]
    return index


def _match_folder(layout: Layout, split: str, images: Path, masks: Path) -> None:
    image_index = _index(layout, images, mask=False)
    mask_index = _index(layout, masks, mask=True)
    pairs = []
    for stem, image in image_index.items():
        if stem not in mask_index:
            layout.errors.append(
                f"{layout.show(image)}: missing mask (expected {masks.name}/{stem}.<ext> "
                f"or {masks.name}/{stem}{MASK_SUFFIX}.<ext>)"
            )
            continue
        pairs.append(Pair(image, mask_index[stem], stem))
    for stem, mask in mask_index.items():
        if stem not in image_index:
            layout.warnings.append(
                f"{layout.show(mask)}: mask without image (no {images.name}/{stem}.<ext>)"
            )
    if not image_index:
        layout.errors.append(f"{layout.show(images)}/: empty split {split!r} (no images)")
    layout.splits[split] = pairs


# ---------------------------------------------------------------------------------------------
# split files


def read_split_file(path: Path, *, root: Path | None = None) -> Layout:
    """Pairs listed in a split file; missing files and malformed entries are reported."""
    doc = _load_yaml(path)
    label = str(doc.get("name") or path.stem)
    layout = Layout("split file", root or path.parent, label)
    bases = _bases(path, doc)
    splits = doc.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise UserError(f"{path}: `splits` must be a mapping split -> list of {{image, mask}}")
    for split, entries in sorted(splits.items(), key=lambda kv: split_sort_key(str(kv[0]))):
        layout.splits[str(split)] = _read_entries(layout, path, str(split), entries, bases)
    return layout


def _load_yaml(path: Path) -> dict:
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: cannot read split file ({first})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: a split file must be a mapping with `splits:`")
    return doc


def _bases(path: Path, doc: dict) -> list[Path]:
    base = doc.get("base")
    if base is None:
        return [path.parent, path.parent.parent]
    if not isinstance(base, str):
        raise UserError(f"{path}: `base` must be a folder path, but got {base!r}")
    return [(path.parent / base).resolve()]


def _resolve(raw: str, bases: list[Path]) -> Path:
    candidates = [(b / raw) for b in bases]
    return next((c for c in candidates if c.exists()), candidates[0])


def _read_entries(
    layout: Layout, path: Path, split: str, entries: object, bases: list[Path]
) -> list[Pair]:
    where = f"{path.name}: split {split!r}"
    if not isinstance(entries, list) or not entries:
        layout.errors.append(f"{layout.show(path)}: empty split {split!r} (no entries)")
        return []
    pairs: list[Pair] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, 1):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("image"), str)
            and isinstance(entry.get("mask"), str)
        ):
            layout.errors.append(
                f"{layout.show(path)}: split {split!r} entry {i} must be "
                "{image: PATH, mask: PATH}"
            )
            continue
        image, mask = _resolve(entry["image"], bases), _resolve(entry["mask"], bases)
        missing = [p for p in (image, mask) if not p.is_file()]
        for p in missing:
            kind = "image" if p is image else "mask"
            layout.errors.append(f"{layout.show(p)}: {kind} listed in {where} does not exist")
        if image.stem in seen:
            layout.errors.append(f"{layout.show(image)}: listed twice in {where}")
        elif not missing:
            pairs.append(Pair(image, mask, image.stem))
        seen.add(image.stem)
    return pairs
