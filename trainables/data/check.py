"""``data check``: decode a whole dataset once and report per split, collecting every problem.

>>> report = check_dataset(spec, crop=256)
>>> print(report.format())
>>> report.raise_for_errors()   # DataError with one "<file>: <rule>" line per problem

Rules (each an error unless said otherwise): missing mask; mask without image (a warning: the
pair is skipped and the rest stays usable; ``strict=True`` makes it an error); image/mask size
mismatch; mask values or colours the class map does not allow, with a count (a warning with
``lenient=True``); empty split; unreadable or truncated file; non-image content under an image
extension; 0-byte file; duplicate stems (``a.png`` and ``a.tif``); NaN/inf in float images;
constant images; images smaller than the training crop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import DataError, UserError
from trainables.data.dataset import PairResult, crop_errors, read_all
from trainables.data.spec import DataSpec

KIND_NAMES = {"nasa": "NASA layout", "flat": "flat layout", "split file": "split file"}


@dataclass(frozen=True)
class SplitReport:
    name: str
    images: int
    sizes: dict[str, int]  # "HxW" -> image count
    fractions: dict[str, float]  # class -> percent of mask pixels
    notes: dict[str, int]  # conversion note -> image count


@dataclass(frozen=True)
class CheckReport:
    label: str
    root: Path
    kind: str  # layout: "nasa", "flat" or "split file"
    classes: tuple[str, ...]
    class_map: str
    splits: list[SplitReport]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        if self.errors:
            raise DataError(self.errors)

    def format(self) -> str:
        """A human-readable table: per split, images, sizes, class fractions, notes."""
        lines = [
            f"{self.label}: {KIND_NAMES.get(self.kind, self.kind)} at {self.root}",
            f"classes ({self.class_map}): {', '.join(self.classes)}",
        ]
        header = ["split", "images", "sizes", *self.classes]
        rows = [header] + [_row(s, self.classes) for s in self.splits]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        for s in self.splits:
            notes = "; ".join(f"{note} ({n})" for note, n in s.notes.items())
            lines.append(f"{s.name} conversion: {notes or '-'}")
        total = sum(s.images for s in self.splits)
        verdict = "OK" if self.ok else f"{len(self.errors)} problem(s)"
        lines.append(
            f"{verdict}: {total} images in {len(self.splits)} splits, "
            f"{len(self.warnings)} warning(s)"
        )
        return "\n".join(lines)


def _row(s: SplitReport, classes: tuple[str, ...]) -> list[str]:
    sizes = ", ".join(f"{hw} ({n})" for hw, n in s.sizes.items()) or "-"
    fracs = [f"{s.fractions[c]:.1f}%" if c in s.fractions else "-" for c in classes]
    return [s.name, str(s.images), sizes, *fracs]


def check_dataset(
    spec: DataSpec,
    *,
    crop: int | None = None,
    lenient: bool = False,
    strict: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check every file of a dataset; never raises for data problems (see ``raise_for_errors``).

    ``crop``: training crop (smaller images are errors); ``lenient``: disallowed mask values are
    warnings; ``strict``: every warning (e.g. a mask without an image) is an error;
    ``progress(done, total)`` is called after each decoded pair (from worker threads).
    """
    if lenient and strict:
        raise UserError("--lenient and --strict exclude each other; choose one")
    if crop is not None and crop < 1:
        raise UserError(f"crop must be >= 1, but got {crop}")
    layout, results = read_all(spec, lenient=lenient, workers=workers, progress=progress)
    errors = list(layout.errors)
    warnings = list(layout.warnings)
    for rs in results.values():
        for r in rs:
            errors += r.errors
            warnings += r.warnings
    errors += crop_errors(layout, results, crop)
    if strict:
        errors, warnings = errors + warnings, []
    return CheckReport(
        label=spec.name or layout.label,
        root=layout.root,
        kind=layout.kind,
        classes=spec.classes.classes,
        class_map=spec.classes.name,
        splits=[_split_report(name, rs, spec.classes.classes) for name, rs in results.items()],
        errors=errors,
        warnings=warnings,
    )


def _split_report(name: str, results: list[PairResult], classes: tuple[str, ...]) -> SplitReport:
    sizes = Counter(
        f"{r.image.shape[0]}x{r.image.shape[1]}" for r in results if r.image is not None
    )
    counts = np.zeros(len(classes), dtype=np.int64)
    for r in results:
        if r.mask is not None:
            counts += np.bincount(r.mask.ravel(), minlength=len(classes))[: len(classes)]
    total = int(counts.sum())
    fractions = (
        {c: 100.0 * int(n) / total for c, n in zip(classes, counts, strict=True)} if total else {}
    )
    notes = Counter(r.note for r in results if r.image is not None)
    return SplitReport(name, len(results), dict(sizes), fractions, dict(notes))
