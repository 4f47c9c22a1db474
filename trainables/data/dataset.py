"""In-memory segmentation datasets: each file decoded once, arrays read-only.

>>> spec = DataSpec.from_mapping({"root": "Super1", "classes": "superalloy"}, base_dir=nasa)
>>> data = load_dataset(spec)
>>> data.splits["train"].images[0].shape
(512, 512, 3)

:class:`SegmentationData` holds plain numpy arrays and strings, so it can go into Ray's object
store once per node and be shared read-only by trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
    class map does not list become class 0 instead of errors; ``workers``: decoding threads.
    """
    raise NotImplementedError  # filled in by the next commit
