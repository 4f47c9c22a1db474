"""In-memory segmentation datasets: each file decoded once, arrays read-only.

>>> spec = DataSpec.from_mapping({"root": "Super1", "classes": "superalloy"}, base_dir=nasa)
>>> data = load_dataset(spec)
>>> data.splits["train"].images[0].shape
(512, 512, 3)

:class:`SegmentationData` holds plain numpy arrays and strings, so it can go into Ray's object
store once per node and be shared read-only by trials.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from core.errors import DataError, UserError
from trainables.data.classmaps import ClassMap
from trainables.data.io import ImageProblem, read_image, read_mask
from trainables.data.layout import FLAT_SPLIT, Layout, Pair, discover
from trainables.data.spec import DataSpec

TRAIN, VAL, TEST = "train", "val", "test"


@dataclass(frozen=True)
class Split:
    """One split: images HxWx3 uint8 and masks HxW uint8 class indices, read-only."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    names: list[str]
    notes: dict[str, int] = field(default_factory=dict)  # conversion note -> image count

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class SegmentationData:
    """A loaded dataset; ``classes[0]`` is the "everything else" class."""

    classes: tuple[str, ...]
    label: str
    splits: dict[str, Split]
    warnings: tuple[str, ...] = ()  # "<file>: <rule>" lines that did not stop loading

    @property
    def test_splits(self) -> list[str]:
        """Every split except train and val: ``test`` first, then extra ones by name."""
        rest = [name for name in self.splits if name not in (TRAIN, VAL)]
        return sorted(rest, key=lambda name: (name != TEST, name))

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_dataset(
    spec: DataSpec, *, crop: int | None = None, lenient: bool = False, workers: int | None = None
) -> SegmentationData:
    """Decode every image and mask once; raise ``DataError`` listing every problem found.

    ``crop``: training crop size (smaller images are an error); ``lenient``: mask values the
    class map does not list become class 0 with a warning instead of an error; ``workers``:
    decoding threads (default: up to 8).
    """
    layout, results = read_all(spec, lenient=lenient, workers=workers)
    errors = list(layout.errors) + [e for rs in results.values() for r in rs for e in r.errors]
    errors += crop_errors(layout, results, crop)
    if FLAT_SPLIT in layout.splits and layout.is_flat:
        errors.append(
            f"{layout.root}: a flat layout needs a split file for training; run "
            f"'microsweep data split {layout.root}' and set data.split_file"
        )
    for needed in (TRAIN, VAL):
        if not layout.is_flat and needed not in layout.splits:
            errors.append(f"{layout.root}: no {needed!r} split (needed for training)")
    if errors:
        raise DataError(errors)
    warnings = list(layout.warnings) + [
        w for rs in results.values() for r in rs for w in r.warnings
    ]
    splits = {name: _to_split(rs) for name, rs in results.items()}
    return SegmentationData(
        spec.classes.classes, spec.name or layout.label, splits, tuple(warnings)
    )


@dataclass
class PairResult:
    """One decoded pair (arrays ``None`` when unreadable) and what was found wrong with it."""

    pair: Pair
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    note: str = ""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_all(
    spec: DataSpec,
    *,
    lenient: bool,
    workers: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Layout, dict[str, list[PairResult]]]:
    """Find the pairs and decode each distinct pair once, in a thread pool."""
    layout = discover(spec.root, spec.split_file)
    unique = list(dict.fromkeys(p for pairs in layout.splits.values() for p in pairs))
    n = workers or min(8, os.cpu_count() or 1)
    count, lock = itertools.count(1), threading.Lock()

    def read(pair: Pair) -> PairResult:
        result = read_pair(pair, spec.classes, layout, lenient=lenient)
        if progress:
            with lock:  # calls in order, so the last one says done == total
                progress(next(count), len(unique))
        return result

    if n > 1 and len(unique) > 1:
        with ThreadPoolExecutor(max_workers=n) as pool:
            done = dict(zip(unique, pool.map(read, unique), strict=True))
    else:
        done = {pair: read(pair) for pair in unique}
    return layout, {name: [done[p] for p in pairs] for name, pairs in layout.splits.items()}


def read_pair(pair: Pair, classes: ClassMap, layout: Layout, *, lenient: bool) -> PairResult:
    """Decode, convert and check one image/mask pair; problems go into the result."""
    res = PairResult(pair)
    img_name, mask_name = layout.show(pair.image), layout.show(pair.mask)
    try:
        res.image, res.note = read_image(pair.image)
        res.image.setflags(write=False)
    except ImageProblem as err:
        res.errors.append(f"{img_name}: {err}")
    try:
        raw = read_mask(pair.mask, colour=classes.colour)
        res.mask, n_bad, examples = classes.encode(raw)
        res.mask.setflags(write=False)
    except (ImageProblem, UserError) as err:
        res.errors.append(f"{mask_name}: {err}")
    else:
        if n_bad:
            line = _disallowed(mask_name, classes, n_bad, res.mask.size, examples, lenient)
            (res.warnings if lenient else res.errors).append(line)
    if res.image is not None and res.mask is not None:
        res.errors += _check_shapes(res.image.shape, res.mask.shape, (img_name, mask_name))
    return res


def _check_shapes(image: tuple[int, ...], mask: tuple[int, ...], names: tuple[str, str]) -> list:
    h, w = image[:2]
    if mask != (h, w):
        return [f"{names[1]}: mask is {mask[0]}x{mask[1]} but its image is {h}x{w}"]
    return []


def crop_errors(layout: Layout, results: dict[str, list[PairResult]], crop: int | None) -> list:
    """Training images smaller than the crop (val/test images are evaluated whole)."""
    if not crop:
        return []
    errors = []
    for r in results.get(TRAIN, results.get(FLAT_SPLIT, [])):
        if r.image is not None and min(r.image.shape[:2]) < crop:
            h, w = r.image.shape[:2]
            errors.append(
                f"{layout.show(r.pair.image)}: image {h}x{w} is smaller than the training "
                f"crop {crop} (use a smaller crop or larger images)"
            )
    return errors


def _disallowed(
    name: str, classes: ClassMap, n_bad: int, total: int, examples: list, lenient: bool
) -> str:
    shown = ", ".join(str(list(v)) if isinstance(v, tuple) else str(v) for v in examples)
    allowed = ", ".join(str(list(v)) if isinstance(v, tuple) else str(v) for v in classes.allowed())
    fix = "counted as class 0" if lenient else "fix the mask, add them to `classes`, or --lenient"
    return (
        f"{name}: {n_bad} pixels ({100 * n_bad / total:.2f}%) have values the class map "
        f"{classes.name!r} does not allow: {shown} (allowed: {allowed}); {fix}"
    )


def _to_split(results: list[PairResult]) -> Split:
    notes: dict[str, int] = {}
    for r in results:
        notes[r.note] = notes.get(r.note, 0) + 1
    return Split(
        images=[r.image for r in results],  # type: ignore[misc]
        masks=[r.mask for r in results],  # type: ignore[misc]
        names=[r.pair.name for r in results],
        notes=notes,
    )
