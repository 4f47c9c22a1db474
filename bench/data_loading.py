"""Data loading throughput: decode (files -> read-only arrays) and decode + augment, images/s.

On the real ``../shared/data/nasa-benchmark`` Super1 and EBC1 when present, else on a generated
synthetic superalloy set. Measured side by side:

- ``decode``: ``load_dataset`` of the whole dataset (images + masks, class encoding), with 1 and
  2 decoding threads; images/s = pairs decoded per second.
- ``augment (in memory)``: the training augmentation (random crop 256, flips, rotate90,
  brightness/contrast; ``trainables.augment`` presets when available) on decoded arrays,
  what a trial does per sample since data is decoded once.
- ``decode + augment``: decoding the pair from disk *and* augmenting, per sample, i.e. what a
  loader without the in-memory cache would pay.

Run: ``.venv/bin/python bench/data_loading.py [--samples 200] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainables.data.dataset import load_dataset, read_pair  # noqa: E402
from trainables.data.layout import discover  # noqa: E402
from trainables.data.spec import DataSpec  # noqa: E402

NASA = REPO.parent / "shared" / "data" / "nasa-benchmark"
CROP = 256


def augmentation(preset: str) -> Callable[..., dict]:
    try:
        from trainables.augment import create_augmentation

        return create_augmentation(preset, crop=CROP)
    except ImportError:  # the presets module is not there yet: the paper-like pipeline
        import albumentations as A

        return A.Compose(
            [
                A.PadIfNeeded(CROP, CROP),
                A.RandomCrop(CROP, CROP),
                A.HorizontalFlip(),
                A.VerticalFlip(),
                A.RandomRotate90(),
                A.RandomBrightnessContrast(p=0.5),
            ]
        )


def datasets(tmp: Path) -> list[tuple[str, DataSpec, str]]:
    found = []
    for name, classes in (("Super1", "superalloy"), ("EBC1", "ebc")):
        if (NASA / name).is_dir():
            spec = DataSpec.from_mapping({"root": name, "classes": classes}, base_dir=NASA)
            found.append((name, spec, classes))
    if found:
        return found
    from trainables.data.synth import generate

    root = generate("superalloy", tmp / "synth", seed=0, n_train=10, n_val=4, n_test=4, size=512)
    spec = DataSpec.from_mapping({"root": str(root), "classes": "superalloy"}, base_dir=root)
    return [("synthetic superalloy 512", spec, "superalloy")]


def best_of(repeat: int, fn: Callable[[], int]) -> tuple[float, float]:
    """(best, median) items/s over ``repeat`` runs of ``fn`` (returns the item count)."""
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def bench(name: str, spec: DataSpec, preset: str, samples: int, repeat: int) -> None:
    n_pairs = sum(len(s) for s in load_dataset(spec).splits.values())
    print(f"\n{name}: {n_pairs} image/mask pairs ({spec.root})")
    for workers in (1, 2):
        best, med = best_of(repeat, lambda w=workers: _decode_all(spec, w))
        _line(f"decode, {workers} thread(s)", best, med)
    data = load_dataset(spec)
    train = data.splits["train"]
    aug = augmentation(preset)
    print(f"  augmentation: {' > '.join(type(t).__name__ for t in aug.transforms)}")
    rng = np.random.default_rng(0)

    def augment_only() -> int:
        for i in rng.integers(0, len(train), samples):
            out = aug(image=train.images[i], mask=train.masks[i])
            assert out["image"].shape[:2] == (CROP, CROP)  # bench sanity, not user input
        return samples

    best, med = best_of(repeat, augment_only)
    _line("augment (in memory)", best, med)
    layout = discover(spec.root, spec.split_file)
    pairs = layout.splits["train"]

    def decode_and_augment() -> int:
        for i in rng.integers(0, len(pairs), samples // 4):
            res = read_pair(pairs[i], spec.classes, layout, lenient=False)
            aug(image=res.image, mask=res.mask)
        return samples // 4

    best, med = best_of(repeat, decode_and_augment)
    _line("decode + augment per sample", best, med)


def _line(label: str, best: float, median: float) -> None:
    print(f"  {label:<30}{best:8.1f} images/s (median {median:.1f})")


def _decode_all(spec: DataSpec, workers: int) -> int:
    return sum(len(s) for s in load_dataset(spec, workers=workers).splits.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="augmented samples per run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec, preset in datasets(Path(tmp)):
            bench(name, spec, preset, args.samples, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
