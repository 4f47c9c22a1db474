"""``microsweep train --data DATA --encoder E --decoder D [...]``: one segmentation trial.

The trial is a one-trial experiment run by the launcher (search.one_trial): the same checks,
trainable, checkpoints and run folder (``--out``: run.json, trials/epochs.parquet) as a sweep
trial; progress is printed once per epoch, then the best val IoU and the test IoU.

Example::

    microsweep train --data ../shared/data/nasa-benchmark/Super1 --classes superalloy \\
        --encoder resnet18 --decoder Unet --epochs 8 --crop 128 --out runs/super1
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from analysis import results as R
from core.errors import UserError
from core.yamlio import load_yaml

# command-line flag -> trial config key
FLAGS: dict[str, tuple[str, type, str]] = {
    "encoder": ("encoder", str, "smp encoder, e.g. resnet18 or tu-mobilenetv3_small_100"),
    "decoder": ("decoder", str, "smp decoder, e.g. Unet, FPN, DeepLabV3Plus"),
    "init": ("init", str, "encoder init: none, imagenet, micronet, image-micronet, zoo:NAME"),
    "epochs": ("max_epochs", int, "maximum epochs"),
    "patience": ("patience", int, "epochs without val-IoU gain before lowering lr / stopping"),
    "crop": ("crop", int, "training crop size (multiple of 32)"),
    "batch_size": ("batch_size", int, "training batch size"),
    "samples_per_epoch": ("samples_per_epoch", int, "random crops per epoch"),
    "lr": ("lr", float, "initial learning rate"),
    "bce_weight": ("bce_weight", float, "weight of the CE term (the rest is Dice)"),
    "augment": ("augment", str, "augmentation preset: superalloy, ebc, none"),
    "precision": ("precision", str, "auto, fp32, bf16, fp16"),
    "seed": ("seed", int, "random seed"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one segmentation model (one trial, printed per epoch)",
        description="Train one segmentation model under a local Ray Tuner.",
    )
    p.add_argument("--data", required=True, help="dataset folder or YAML file with a data: block")
    p.add_argument("--split-file", help="split file (relative to the data root)")
    p.add_argument("--classes", help="class map preset (superalloy, ebc) if not in the YAML")
    for flag, (_, kind, text) in FLAGS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind, help=text)
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="any other trial config key, e.g. --set eval_tile=512 (repeatable)",
    )  # fmt: skip
    p.add_argument("--cpus", type=int, help="CPUs for the trial (default: all)")
    p.add_argument(
        "--gpus", type=float, help="GPUs for the trial (default: 1 if this machine has one, else 0)"
    )
    p.add_argument("--out", default="runs/train", help="run folder (replaced if it exists)")
    p.set_defaults(func=run)


def trial_config(args: argparse.Namespace) -> dict[str, Any]:
    """The trial config dict from the flags and ``--set KEY=VALUE`` (values parsed as YAML)."""
    config: dict[str, Any] = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, but got {item!r}")
        config[key.strip()] = load_yaml(value)
    for flag, (key, _, _) in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            config[key] = value
    return config


def data_block(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The ``data:`` block and the folder its relative paths start from."""
    from trainables.data.spec import data_mapping

    return data_mapping(Path(args.data), classes=args.classes, split_file=args.split_file)


def run(args: argparse.Namespace) -> int:
    from search.one_trial import (
        final_checkpoint,
        local_gpus_per_worker,
        one_trial_experiment,
        run_one_trial,
    )

    data, base_dir = data_block(args)
    cpus = args.cpus or os.cpu_count() or 1
    exp = one_trial_experiment(
        "segmentation", trial_config(args), data=data, run_dir=Path(args.out), cpus=cpus,
        gpus=local_gpus_per_worker(args.gpus), base_dir=base_dir,
    )  # fmt: skip
    _fresh_run_folder(exp.run_dir)
    row = run_one_trial(exp)  # every value and the dataset checked before Ray starts
    print(f"best val IoU {row[R.VAL_IOU]:.4f} (epoch {row[R.BEST_EPOCH]})")
    for key, value in sorted(row.items()):
        if key.startswith(R.TEST_IOU_PREFIX) and value is not None:
            print(f"{key.removeprefix(R.TEST_IOU_PREFIX)} IoU {value:.4f}")
    print(f"checkpoint: {final_checkpoint(exp, row)}")
    print(f"run folder: {exp.run_dir}")
    return 0


def _fresh_run_folder(run_dir: Any) -> None:
    """One trial is not resumed: an earlier run in the same folder is replaced."""
    import shutil

    if not run_dir.is_uri:
        shutil.rmtree(str(run_dir), ignore_errors=True)
