"""``microsweep train --data DATA --encoder E --decoder D [...]``: one segmentation trial.

The trial runs under a local Ray Tuner with the same trainable, checkpoints and reports as a
sweep trial; progress is printed once per epoch, then the best val IoU and the test IoU.

Example::

    microsweep train --data ../shared/data/nasa-benchmark/Super1 --classes superalloy \\
        --encoder resnet18 --decoder Unet --epochs 8 --crop 128 --out runs/super1
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from core.errors import UserError

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
    p.add_argument("--out", default="runs/train", help="folder for Ray's trial and checkpoints")
    p.set_defaults(func=run)


def trial_config(args: argparse.Namespace) -> dict[str, Any]:
    """The trial config dict from the flags and ``--set KEY=VALUE`` (values parsed as YAML)."""
    config: dict[str, Any] = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, but got {item!r}")
        config[key.strip()] = yaml.safe_load(value)
    for flag, (key, _, _) in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            config[key] = value
    from trainables.config import SegmentationConfig
    from trainables.models import check_feasible

    cfg = SegmentationConfig.from_dict(config)  # fail here, before Ray starts
    reason = check_feasible(cfg.decoder, cfg.encoder)
    if reason:
        raise UserError(f"{cfg.decoder} with encoder {cfg.encoder!r} is infeasible: {reason}")
    return config


def run(args: argparse.Namespace) -> int:
    from trainables.data.dataset import load_dataset
    from trainables.data.spec import load_data_spec

    config = trial_config(args)
    spec = load_data_spec(Path(args.data), classes=args.classes, split_file=args.split_file)
    data = load_dataset(spec, crop=config.get("crop"))
    cpus = args.cpus or os.cpu_count() or 1
    names = {k: len(s) for k, s in data.splits.items()}
    print(f"data: {data.label} classes {list(data.classes)} images {names}", flush=True)
    result = train(data, config, out=Path(args.out), cpus=cpus)
    return summarise(result.metrics, result.checkpoint)


def train(data: Any, config: dict[str, Any], *, out: Path, cpus: int) -> Any:
    """Run one trial under a local Tuner; returns Ray's ``Result`` of it."""
    import ray
    from ray import tune

    from trainables.segmentation import segmentation_trainable

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our per-epoch lines instead of tables
    if not ray.is_initialized():
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    trainable = tune.with_resources(
        tune.with_parameters(segmentation_trainable, data=data), {"cpu": cpus}
    )
    keep = int(config.get("checkpoints_to_keep", 2))
    tuner = tune.Tuner(
        trainable,
        param_space=config,
        run_config=tune.RunConfig(
            storage_path=str(out.resolve()),
            name="train",
            callbacks=[_progress_callback()],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
            verbose=0,
        ),
    )
    results = tuner.fit()
    return results[0]


def summarise(metrics: dict[str, Any], checkpoint: Any) -> int:
    if metrics.get("infeasible"):
        raise UserError(metrics.get("error", "the model cannot be built"))
    if metrics.get("diverged"):
        print(f"diverged at epoch {metrics['epoch']}: {metrics['error']}", file=sys.stderr)
        return 1
    print(f"best val IoU {metrics['best_val_iou']:.4f} (epoch {metrics['best_epoch']})")
    for key, value in sorted(metrics.items()):
        if key.startswith("test_iou:"):
            print(f"{key.removeprefix('test_iou:')} IoU {value:.4f}")
    if checkpoint is not None:
        print(f"checkpoint: {checkpoint.path}")
    return 0


def _progress_line(r: dict[str, Any]) -> str:
    return (
        f"epoch {r['epoch']:3d}  train_loss {r['train_loss']:.4f}  val_loss {r['val_loss']:.4f}  "
        f"val_iou {r['val_iou']:.4f}  lr {r['lr']:.1e}  {r['wall_s']:.0f}s"
    )


def _progress_class():
    from ray import tune

    class Progress(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "val_iou" in result:
                print(_progress_line(result), flush=True)

    return Progress


def _progress_callback() -> Any:
    # the class is built lazily so that ray is imported only when training
    return _progress_class()()
