"""Segment micrographs with a model package: masks, overlays, phase fractions, particle sizes.

Example::

    from search.predict import PredictOptions, predict_images
    result = predict_images("runs/super1/model", ["new/*.tif"], "pred",
                            options=PredictOptions(tta=True, scale=Scale(0.02, "um")))
    result.failed    # one line per input that could not be read (the rest were predicted)

Writes ``OUT/masks/{image}.png`` (class indices), ``OUT/overlays/{image}.png``,
``OUT/phases.{parquet,csv}``, ``OUT/particles.{parquet,csv}``, ``OUT/summary.json`` and
``OUT/predict.json`` (how they were made: the model's provenance, options, versions, inputs).
With ``address`` the images go to Ray tasks (one per batch of images) and the results are
gathered into the same files.
"""

from __future__ import annotations

import datetime
import glob
import io
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import measure as M
from core import storage
from core.errors import UserError

MASKS_DIR, OVERLAYS_DIR = "masks", "overlays"
PHASES, PARTICLES = "phases", "particles"
SUMMARY_FILE, RECORD_FILE = "summary.json", "predict.json"
OVERLAY_ALPHA = 0.45


@dataclass(frozen=True)
class PredictOptions:
    """How to predict: flips, device, precision, pixel size, overwrite, Ray batch size."""

    tta: bool = False
    device: str | None = None
    precision: str = "auto"
    scale: M.Scale = field(default_factory=M.Scale)
    overwrite: bool = False
    images_per_task: int = 8


@dataclass
class ImageResult:
    """One input's outcome: PNGs and table rows, or the one-line error."""

    path: str
    name: str
    error: str | None = None
    note: str = ""
    mask_png: bytes = b""
    overlay_png: bytes = b""
    phases: list[dict[str, Any]] = field(default_factory=list)
    particles: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PredictResult:
    out: Path
    predicted: list[str]
    failed: list[str]
    summary: dict[str, Any]


def collect_images(items: Iterable[str]) -> list[Path]:
    """Image files from files, folders (their images, not recursing) and glob patterns."""
    from trainables.data.io import is_image_name

    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and is_image_name(p))
        elif path.exists():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not matches:
                raise UserError(f"{item}: the pattern matches no file")
            found += matches
        else:
            raise UserError(f"{item}: no such file or folder")
    found = list(dict.fromkeys(p.resolve() for p in found))
    if not found:
        raise UserError(f"no images found in {', '.join(items)}")
    seen: dict[str, Path] = {}
    for p in found:
        if p.stem in seen:
            raise UserError(f"{p} and {seen[p.stem]} would both write masks/{p.stem}.png; "
                            "predict them into separate --out folders")  # fmt: skip
        seen[p.stem] = p
    return found


def output_paths(out: Path, names: Sequence[str]) -> list[Path]:
    per_image = [out / d / f"{n}.png" for n in names for d in (MASKS_DIR, OVERLAYS_DIR)]
    tables = [out / f"{t}.{ext}" for t in (PHASES, PARTICLES) for ext in ("parquet", "csv")]
    return [*per_image, *tables, out / SUMMARY_FILE, out / RECORD_FILE]


def predict_images(
    model_dir: str | Path,
    images: Sequence[str],
    out: str | Path,
    *,
    options: PredictOptions = PredictOptions(),
    address: str | None = None,
    progress: bool = True,
) -> PredictResult:
    """Predict every image; unreadable ones are reported (stderr, ``failed``) and skipped."""
    from trainables.data.synth._common import Progress
    from trainables.package import load_model

    out = Path(out)
    paths = collect_images(images)
    existing = [p for p in output_paths(out, [p.stem for p in paths]) if p.exists()]
    if existing and not options.overwrite:
        raise UserError(f"{existing[0]} exists ({len(existing)} output files in all); "
                        "pass --overwrite or choose another --out")  # fmt: skip
    model = load_model(model_dir, device=options.device, precision=options.precision)
    bar = Progress("predict", len(paths), enabled=progress)
    results: dict[str, ImageResult] = {}

    def take(result: ImageResult) -> None:
        if result.error:
            print(f"microsweep: error: {result.path}: {result.error}", file=sys.stderr)
        else:
            storage.write_bytes(out / MASKS_DIR / f"{result.name}.png", result.mask_png)
            storage.write_bytes(out / OVERLAYS_DIR / f"{result.name}.png", result.overlay_png)
        results[result.path] = result
        bar.step()

    if address is not None:
        _predict_on_ray(Path(model_dir), paths, options, address, take)
    else:
        for path in paths:
            take(process_image(model, path, options))
    ordered = [results[str(p)] for p in paths]
    summary = write_tables(out, ordered, model.classes, options.scale)
    write_record(out, model_dir, model.meta, ordered, options, address)
    ok = [r.name for r in ordered if not r.error]
    return PredictResult(out, ok, [f"{r.path}: {r.error}" for r in ordered if r.error], summary)


def process_image(model: Any, path: Path, options: PredictOptions) -> ImageResult:
    """Read, predict, measure and encode one image; a bad file becomes ``error``."""
    from trainables.data.io import ImageProblem, read_image

    result = ImageResult(path=str(path), name=path.stem)
    try:
        image, result.note = read_image(path)
    except ImageProblem as err:
        result.error = str(err)
        return result
    pred = model.predict_all(image, tta=options.tta)
    result.mask_png = _png(pred.mask)
    result.overlay_png = _png(overlay(image, pred.mask, model.colours))
    result.phases = M.phase_rows(pred.mask, model.classes, image=path.stem,
                                 members=pred.member_masks)  # fmt: skip
    result.particles = M.particle_rows(pred.mask, model.classes, image=path.stem,
                                       scale=options.scale)  # fmt: skip
    return result


def overlay(image: np.ndarray, mask: np.ndarray, colours: Sequence[Sequence[int]]) -> np.ndarray:
    """The image with every class but 0 tinted in its display colour."""
    lut = np.asarray(colours, dtype=np.float32)
    tint = lut[mask]
    alpha = np.where(mask[..., None] > 0, OVERLAY_ALPHA, 0.0).astype(np.float32)
    blended = image.astype(np.float32) * (1 - alpha) + tint * alpha
    return blended.round().astype(np.uint8)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_tables(
    out: Path, results: list[ImageResult], classes: Sequence[str], scale: M.Scale
) -> dict[str, Any]:
    """Phases and particles as Parquet and CSV, and ``summary.json``; returns the summary."""
    import pyarrow as pa

    phases = [row for r in results for row in r.phases]
    particles = [row for r in results for row in r.particles]
    for name, rows, columns in ((PHASES, phases, M.PHASE_COLUMNS),
                                (PARTICLES, particles, M.PARTICLE_COLUMNS)):  # fmt: skip
        table = pa.Table.from_pylist(rows) if rows else _empty(columns)
        storage.write_parquet(out / f"{name}.parquet", table)
        csv = table.to_pandas().to_csv(index=False)  # quotes only where needed, for spreadsheets
        storage.write_bytes(out / f"{name}.csv", csv.encode())
    summary = M.summarise(phases, particles, classes, scale=scale)
    storage.write_json(out / SUMMARY_FILE, summary)
    return summary


def _empty(columns: Sequence[str]) -> Any:
    import pyarrow as pa

    text = (M.IMAGE, M.CLASS, M.UNIT)
    return pa.table({c: pa.array([], pa.string() if c in text else pa.float64()) for c in columns})


def write_record(
    out: Path,
    model_dir: str | Path,
    meta: dict[str, Any],
    results: list[ImageResult],
    options: PredictOptions,
    address: str | None,
) -> None:
    """``predict.json``: what made these outputs (model, options, versions, each input)."""
    from trainables.package import package_versions

    notes: dict[str, int] = {}
    for r in results:
        if r.note:
            notes[r.note] = notes.get(r.note, 0) + 1
    storage.write_json(out / RECORD_FILE, {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "model": str(Path(model_dir).resolve()),
        "model_json": meta,
        "options": {**asdict(options), "address": address},
        "versions": package_versions(),
        "inputs": [{"path": r.path, "name": r.name, "error": r.error} for r in results],
        "conversion_notes": notes,
    })  # fmt: skip


# ---------------------------------------------------------------------------------- Ray
def _predict_on_ray(
    model_dir: Path,
    paths: list[Path],
    options: PredictOptions,
    address: str,
    take: Callable[[ImageResult], None],
) -> None:
    """One Ray task per ``images_per_task`` images; the package travels in the object store.

    Workers read the images at the paths given, so on a cluster they must lie on storage every
    node sees (as the run folders do).
    """
    import ray

    from search.launch import start_ray
    from trainables.package import META_FILE, WEIGHTS_FILE

    start_ray(None if address in ("", "local") else address)
    package = ray.put({n: (model_dir / n).read_bytes() for n in (META_FILE, WEIGHTS_FILE)})
    task = ray.remote(num_cpus=1)(predict_batch)
    k = max(1, options.images_per_task)
    pending = [task.remote(package, [str(p) for p in paths[i : i + k]], options)
               for i in range(0, len(paths), k)]  # fmt: skip
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for result in ray.get(done[0]):
            take(result)


def predict_batch(
    package: dict[str, bytes], paths: list[str], options: PredictOptions
) -> list[ImageResult]:
    """A Ray task: load the package from its bytes and process ``paths``."""
    import tempfile

    import torch

    from trainables.package import load_model
    from trainables.runtime import ray_resources

    torch.set_num_threads(ray_resources()[0])
    with tempfile.TemporaryDirectory(prefix="microsweep-model-") as folder:
        for name, data in package.items():
            (Path(folder) / name).write_bytes(data)
        model = load_model(folder, device=options.device, precision=options.precision)
    return [process_image(model, Path(p), options) for p in paths]
