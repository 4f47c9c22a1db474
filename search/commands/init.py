"""``microsweep init DATA_DIR --classes MAP``: an experiment file fitted to a dataset."""

from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  microsweep init NewAlloy --classes superalloy
  microsweep init EBC1 --classes ebc --out ebc1.yaml
  microsweep init Coating --classes '{background: 0, oxide: 1}' --preset demo --force
then:
  microsweep recommend exp.yaml     (or: microsweep sweep exp.yaml)"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="check a dataset and write an experiment file for it (from a preset)",
        description="Check the dataset (the rules of `data check`), write a split file for a "
        "flat layout that has none (`data split` defaults), and write the preset as an "
        "experiment file with `data:` filled in, `train.crop` fitted to the training images "
        "and `resources` fitted to this machine. Prints the dry-run plan.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="dataset folder (NASA or flat layout)")
    p.add_argument(
        "--classes",
        required=True,
        help="class map preset (superalloy, ebc) or an inline YAML mapping",
    )
    p.add_argument("--preset", default="new-material", help="preset (default: new-material)")
    p.add_argument("--out", default="exp.yaml", help="experiment file (default: exp.yaml)")
    p.add_argument("--split-file", help="the dataset's own split file (relative to DATA_DIR)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from search.commands.data import classes_arg, print_warnings, reading_progress
    from search.commands.sweep import pair_progress
    from search.init_experiment import init_experiment
    from search.plan import format_plan, make_plan

    result = init_experiment(
        args.data_dir,
        classes=classes_arg(args.classes),
        preset=args.preset,
        out=args.out,
        split_file=args.split_file,
        force=args.force,
        progress=reading_progress if sys.stderr.isatty() else None,
    )
    print(result.summary())
    print_warnings(result.check.warnings)  # counted in the summary: which ones, here
    print(format_plan(make_plan(result.experiment, progress=pair_progress)))
    print(f"next:  microsweep recommend {result.path}   (or: microsweep sweep {result.path})")
    return 0
