"""`microsweep data`: check datasets, write split files, generate synthetic data.

microsweep data check ../shared/data/nasa-benchmark/Super1 --classes superalloy
microsweep data check Super1 --split-file ../splits/Super3.yaml --classes superalloy
microsweep data split NewAlloy --seed 0 --ratios 0.7,0.15,0.15
microsweep data synth superalloy /tmp/synth --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from core.errors import UserError, unknown_name
from core.yamlio import load_yaml


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="check datasets, write split files, synthetic data")
    parser.set_defaults(func=lambda args: _usage(parser))
    group = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    _register_check(group)
    _register_split(group)
    _register_synth(group)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _register_check(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "check",
        help="check a dataset: counts, sizes, class fractions; exit 2 listing every problem",
        description="Decode every image and mask once and list every problem found, one line "
        "each ('microsweep: error: <file>: <rule>'). Exit 0 when the dataset is valid.",
    )
    p.add_argument(
        "target",
        metavar="DATA_YAML_OR_ROOT",
        help="dataset folder, or a YAML file holding a `data:` block",
    )
    p.add_argument(
        "--classes",
        help="class map preset (superalloy, ebc) or an inline YAML "
        "mapping, e.g. '{background: rest, oxide: 1}'",
    )
    p.add_argument(
        "--split-file",
        help="split file (relative to the dataset root unless "
        "absolute, or found from the current folder)",
    )
    p.add_argument("--crop", type=int, help="training crop size; smaller images are errors")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--lenient",
        action="store_true",
        help="mask values outside the class map become counted warnings",
    )
    mode.add_argument(
        "--strict",
        action="store_true",
        help="warnings (e.g. a mask without its image) become errors",
    )
    p.add_argument("--workers", type=int, help="decoding threads (default: up to 8)")
    p.set_defaults(func=run_check)


def classes_arg(text: str | None) -> object:
    if text is None or not text.lstrip().startswith("{"):
        return text
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        raise UserError(f"--classes: cannot parse {text!r} as a YAML mapping") from None


def print_warnings(warnings: list[str]) -> None:
    """A check's warnings, one line each on stderr (a mask without its image, ...)."""
    for line in warnings:
        print(f"microsweep: warning: {line}", file=sys.stderr)


def run_check(args: argparse.Namespace) -> int:
    from trainables.data.check import check_dataset
    from trainables.data.spec import load_data_spec

    spec = load_data_spec(
        Path(args.target), classes=classes_arg(args.classes), split_file=args.split_file
    )
    report = check_dataset(
        spec,
        crop=args.crop,
        lenient=args.lenient,
        strict=args.strict,
        workers=args.workers,
        progress=reading_progress if sys.stderr.isatty() else None,
    )
    print(report.format())
    print_warnings(report.warnings)
    report.raise_for_errors()
    return 0


def reading_progress(done: int, total: int) -> None:
    end = "\n" if done == total else ""
    print(f"\rreading {done}/{total} image/mask pairs", end=end, file=sys.stderr, flush=True)


def _register_split(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "split",
        help="write reproducible split files for a flat layout (images/ + masks/)",
        description="Shuffle the pairs with a seed and write ROOT/splits/<name>.yaml "
        "(train/val/test by ratios, or one file per fold with --folds).",
    )
    p.add_argument("root", metavar="ROOT", help="dataset folder with images/ and masks/")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--ratios",
        default="0.7,0.15,0.15",
        help="train,val[,test] fractions summing to 1 (default 0.7,0.15,0.15)",
    )
    p.add_argument("--folds", type=int, help="k folds instead of ratios (test part i, val i+1)")
    p.add_argument("--out", help="folder for the split files (default ROOT/splits)")
    p.set_defaults(func=run_split)


def run_split(args: argparse.Namespace) -> int:
    from trainables.data.splits import write_splits

    try:
        ratios = [float(x) for x in args.ratios.split(",")]
    except ValueError:
        raise UserError(
            f"--ratios must be numbers like 0.7,0.15,0.15, but got {args.ratios!r}"
        ) from None
    root = Path(args.root)
    paths = write_splits(
        root,
        seed=args.seed,
        ratios=ratios,
        folds=args.folds,
        out_dir=Path(args.out) if args.out else None,
    )
    for path in paths:
        print(f"wrote {path}")
    print(f"use it as:  data: {{root: {root}, split_file: {_rel_to(paths[0], root)}}}")
    return 0


def _rel_to(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _register_synth(group: argparse._SubParsersAction) -> None:
    p = group.add_parser("synth", help="generate a small synthetic dataset (deterministic)")
    p.add_argument("kind", metavar="KIND", help="superalloy, ebc or micronet")
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-val", type=int)
    p.add_argument("--n-test", type=int)
    p.add_argument("--size", type=int, help="image side in pixels")
    p.add_argument(
        "--different-test",
        action="store_true",
        help="also write a different_test split with shifted imaging conditions",
    )
    p.add_argument("--n-classes", type=int, help="micronet: number of classes (default: all)")
    p.add_argument(
        "--format",
        default="png",
        help="micronet: png (compressed, default) or tif (uncompressed: 1.4x the bytes, "
        "decoded 6x faster by the pretraining loader)",
    )
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty OUT folder")
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from trainables.data import synth  # lazy: generators are only needed here

    if args.kind not in synth.KINDS:
        raise unknown_name("synthetic data kind", args.kind, synth.KINDS)
    out = synth.generate(
        args.kind,
        Path(args.out),
        seed=args.seed,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        size=args.size,
        different_test=args.different_test,
        n_classes=args.n_classes,
        image_format=args.format,
        overwrite=args.overwrite,
        progress=True,
    )
    print(f"wrote {out}")
    if (out / "data.yaml").is_file():
        print(f"check it:  microsweep data check {out / 'data.yaml'}")
    return 0
