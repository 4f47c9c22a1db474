"""``microsweep recommend EXP.yaml | RUN [--top K] [--seeds S | --folds [N]] [--ensemble]``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recommend",
        help="search, confirm the top configurations with new seeds, rank them, export the best",
        description="Find the best model for a dataset: run the experiment's sweep (or use the "
        "one in a run folder), retrain the top K configurations from scratch with S new seeds "
        "(or once per fold of the dataset's k-fold split files), "
        "rank them with their uncertainty (RUN/recommendation.json) and export the winner to "
        "RUN/model for `microsweep predict`.",
    )
    p.add_argument("target", help="experiment YAML file, or the run folder of an earlier sweep")
    p.add_argument("--top", type=int, default=3, help="configurations to confirm (default 3)")
    p.add_argument(
        "--seeds", type=int, help="new seeds per configuration (default 3; not with --folds)"
    )
    p.add_argument(
        "--folds", type=int, nargs="?", const=True, metavar="N",
        help="instead of seeds: train each configuration once per fold of the dataset's k-fold "
        "split files (`microsweep data split ROOT --folds K`); N: the first N folds",
    )  # fmt: skip
    p.add_argument(
        "--ensemble", action="store_true",
        help="export all confirm trials (seeds or folds) of the winner",
    )  # fmt: skip
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a key of the experiment file (repeatable)",
    )  # fmt: skip
    p.add_argument("--address", help="Ray cluster address ('auto': the local `ray start`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from search.recommend import MODEL_DIR, recommend

    rec, run_dir = recommend(
        args.target, top=args.top, seeds=args.seeds, folds=args.folds, ensemble=args.ensemble,
        address=args.address, overrides=args.overrides,
    )  # fmt: skip
    doc = rec.to_json()
    win = doc["winner"]
    print(f"recommended: {win['label']}  ({doc['evidence']} evidence)")
    print(doc["verdict"])
    print(f"details: {run_dir}/recommendation.json; report: microsweep report {run_dir}")
    print(f"use it:  microsweep predict {run_dir}/{MODEL_DIR} IMAGES... --out predictions")
    return 0
