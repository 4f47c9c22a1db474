"""What a run records about its dataset so an exported model can name where it came from.

:func:`class_map_record` is the class map as plain JSON (names, mask values, display colours);
:func:`dataset_sha256` hashes the sorted list of the dataset's files with their sizes (cheap:
no file is read), so two runs on the same files carry the same hash.

Example::

    record = class_map_record(spec.classes)   # {"name": "superalloy", "classes": [...]}
    digest = dataset_sha256(spec)             # "3f2a..."
"""

from __future__ import annotations

import hashlib
from typing import Any

from trainables.data.classmaps import ClassMap
from trainables.data.layout import discover
from trainables.data.spec import DataSpec

# Display colours for classes whose mask value is no colour (index maps, the `rest` class):
# class 0 black (overlays leave it transparent), then tab10's distinguishable hues.
PALETTE = (
    (0, 0, 0),
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def display_colours(classes: ClassMap) -> list[tuple[int, int, int]]:
    """One RGB colour per class: its own mask colour when it has exactly one, else the palette."""
    out = []
    for index, values in enumerate(classes.values):
        if len(values) == 1 and isinstance(values[0], tuple):
            out.append(values[0])
        else:
            out.append(PALETTE[index % len(PALETTE)])
    return out


def class_map_record(classes: ClassMap) -> dict[str, Any]:
    """``{"name", "rest", "classes": [{"name", "index", "values", "colour"}]}`` as plain JSON."""
    colours = display_colours(classes)
    return {
        "name": classes.name,
        "rest": classes.rest,
        "classes": [
            {
                "name": name,
                "index": i,
                "values": [list(v) if isinstance(v, tuple) else v for v in values],
                "colour": list(colours[i]),
            }
            for i, (name, values) in enumerate(zip(classes.classes, classes.values, strict=True))
        ],
    }


def dataset_sha256(spec: DataSpec) -> str:
    """SHA-256 of ``split/relative path/size`` lines of every image and mask, sorted."""
    layout = discover(spec.root, spec.split_file)
    lines = set()
    for split, pairs in layout.splits.items():
        for pair in pairs:
            for path in (pair.image, pair.mask):
                size = path.stat().st_size if path.is_file() else -1
                lines.add(f"{split}\t{layout.show(path)}\t{size}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
