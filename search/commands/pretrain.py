"""`microsweep pretrain`: pretrain one encoder on an image folder and export it to the zoo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainables.pretrain_config import PretrainConfig

_DEFAULTS = PretrainConfig  # its class attributes are the defaults (no torch at --help)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain an encoder by classification and export it to an encoder zoo",
        description="Example: microsweep pretrain --data micronet-synth --encoder resnet18 "
        "--zoo zoo --name r18-micro --epochs 5",
    )
    p.add_argument(
        "--data",
        required=True,
        help="image folder ROOT/{train,val}/<class>/ or a path,label[,split] manifest "
        "(.csv/.parquet); a local path or a URI such as s3://bucket/micronet",
    )
    p.add_argument("--encoder", default=_DEFAULTS.encoder, help="smp encoder or tu-<timm name>")
    p.add_argument("--zoo", type=Path, required=True, help="encoder zoo folder (created if absent)")
    p.add_argument("--name", required=True, help="zoo entry name, later usable as init zoo:NAME")
    p.add_argument("--init", default=_DEFAULTS.init, help="none (default) or imagenet")
    p.add_argument("--epochs", type=int, default=_DEFAULTS.max_epochs, help="max epochs")
    p.add_argument("--patience", type=int, default=_DEFAULTS.patience)
    p.add_argument("--size", type=int, default=_DEFAULTS.size, help="crop size (multiple of 32)")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size)
    p.add_argument(
        "--lr",
        type=float,
        default=_DEFAULTS.lr,
        help=f"learning rate at a global batch of {_DEFAULTS.lr_batch}, scaled linearly to "
        f"--batch-size x --workers (default {_DEFAULTS.lr:g})",
    )
    p.add_argument(
        "--lr-step",
        type=int,
        default=_DEFAULTS.lr_step,
        help=f"epochs between decays of the rate by {_DEFAULTS.lr_gamma:g} "
        f"(default {_DEFAULTS.lr_step})",
    )
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="data-parallel Ray Train workers (DDP; each its own process, --cpus CPUs and "
        "--batch-size images per step); default 1",
    )
    p.add_argument(
        "--cpus", type=int, default=None, help="CPUs per worker (default: all CPUs / --workers)"
    )
    p.add_argument(
        "--gpus",
        type=float,
        default=None,
        help="GPUs per worker (default: 1 each when this machine has a GPU per worker, else 0)",
    )
    p.add_argument("--storage", type=Path, default=None, help="keep Ray's run folder here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing zoo entry")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from search.pretrain import run_pretrain

    config = {
        "encoder": args.encoder, "init": args.init, "zoo_dir": str(args.zoo.resolve()),
        "zoo_name": args.name, "overwrite": args.overwrite, "max_epochs": args.epochs,
        "patience": args.patience, "size": args.size, "batch_size": args.batch_size,
        "lr": args.lr, "lr_step": args.lr_step, "seed": args.seed,
    }  # fmt: skip
    entry = run_pretrain(
        args.data,
        config,
        storage=args.storage,
        cpus=args.cpus,
        gpus=args.gpus,
        workers=args.workers,
    )
    print(json.dumps(entry.to_dict(), indent=2))
    return 0
