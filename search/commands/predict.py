"""``microsweep predict MODEL IMAGES... --out DIR``: masks, overlays and measurements."""

from __future__ import annotations

import argparse
import math
import sys

EPILOG = """examples:
  microsweep predict runs/super1/model new_images/ --out pred
  microsweep predict model/ 'scans/*.tif' one.png --out pred --tta flip --pixel-size 0.02 um
  microsweep predict model/ /nfs/scans/ --out /nfs/pred --address auto   # Ray cluster
outputs: DIR/masks/*.png (class indices), DIR/overlays/*.png, DIR/phases.parquet|csv,
DIR/particles.parquet|csv, DIR/summary.json, DIR/predict.json (how they were made)"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment micrographs with an exported model; measure phases and particles",
        description="Whole-image tiled inference with a model package from 'microsweep "
        "export'; unreadable inputs are named and skipped (exit code 2 at the end).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="model package folder")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files, folders or globs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--tta",
        choices=("none", "flip"),
        default="none",
        help="flip: mean of the four flips (4x slower)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--precision", default="auto", help="auto (fp32 on CPUs), fp32, bf16, fp16")
    p.add_argument(
        "--pixel-size",
        nargs=2,
        metavar=("VALUE", "UNIT"),
        help="physical size of a pixel, e.g. 0.02 um: sizes in UNIT and UNIT^2",
    )
    p.add_argument("--overwrite", action="store_true", help="replace earlier outputs in DIR")
    p.add_argument("--address", help="Ray tasks on this cluster: auto, local or host:port")
    p.add_argument("--images-per-task", type=int, default=8, help="Ray: images per task")
    p.set_defaults(func=run)  # fmt: skip


def parse_scale(values: list[str] | None):  # -> analysis.measure.Scale
    from analysis.measure import Scale
    from core.errors import UserError

    if not values:
        return Scale()
    text, unit = values
    try:
        size = float(text)
    except ValueError:
        size = math.nan
    if not (math.isfinite(size) and size > 0):
        raise UserError(f"`--pixel-size` must be a positive number and a unit (e.g. 0.02 um), "
                        f"but got {text!r}")  # fmt: skip
    return Scale(size, unit)


def run(args: argparse.Namespace) -> int:
    from search.predict import PredictOptions, predict_images

    options = PredictOptions(
        tta=args.tta == "flip", device=args.device, precision=args.precision,
        scale=parse_scale(args.pixel_size), overwrite=args.overwrite,
        images_per_task=args.images_per_task,
    )  # fmt: skip
    result = predict_images(args.model, args.images, args.out, options=options,
                            address=args.address, progress=True)  # fmt: skip
    print(f"predicted {len(result.predicted)} image(s) into {result.out}", end="")
    print(f"; {len(result.failed)} failed (named above)" if result.failed else "")
    for name, entry in result.summary["classes"].items():
        if entry["fraction_mean"] is not None:
            mean, std = 100 * entry["fraction_mean"], 100 * entry["fraction_std"]
            line = f"  {name}: {mean:.1f}% ± {std:.1f}"
            print(line + (f", {entry['particles']} particles" if "particles" in entry else ""))
    if result.failed or not result.predicted:
        print(f"microsweep: {len(result.failed)} input(s) could not be predicted", file=sys.stderr)
        return 2
    return 0
