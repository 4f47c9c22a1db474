"""What the trainable costs on top of a bare PyTorch loop: same model, data, epochs.

- ``bare``: a plain loop (model, Adam, the paper's loss, the same random crops) training
  ``--epochs`` epochs, then one whole-image validation; no Ray, no checkpoints. It runs before
  and after the trainable, and the ratio uses the mean of the two: consecutive identical runs
  on this VM differ by up to ~6 %.
- ``trainable``: ``segmentation_trainable`` under a local ``tune.Tuner`` (Ray started first,
  not counted), with per-epoch whole-image validation, checkpoints and reports, and the final
  test evaluation of the best model.

The trial configuration is the trainable's defaults (Unet-resnet18, fp32 on CPU, 256² crops,
64 crops per epoch, batch 8) unless ``--crop``/``--samples`` say otherwise.

Prints the wall-time ratio (target <= 1.10) and where the extra time goes, from the
trainable's own per-epoch timings and Ray's time between reports: validation, checkpoint
writing, reporting with checkpoint upload (per epoch), and the fixed cost of a trial (worker
start and imports, model build, final test evaluation, last upload).

Run: ``.venv/bin/python bench/trainable_overhead.py [--epochs 12] [--crop 256] [--samples 64]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainables.augment import create_augmentation  # noqa: E402
from trainables.config import SegmentationConfig  # noqa: E402
from trainables.data.dataset import load_dataset  # noqa: E402
from trainables.data.spec import load_data_spec  # noqa: E402
from trainables.data.synth import generate  # noqa: E402
from trainables.loop import CropDataset, EvalSettings, epoch_seed, evaluate, make_loader  # noqa: E402
from trainables.losses import SegmentationLoss  # noqa: E402
from trainables.models import create_model  # noqa: E402
from trainables.runtime import resolve_runtime  # noqa: E402


def bare_loop(cfg: SegmentationConfig, data) -> float:
    """Seconds for the bare loop: train ``max_epochs`` epochs, validate once."""
    t0 = time.perf_counter()
    runtime = resolve_runtime(cfg.precision, cfg.channels_last, use_cuda=False)
    torch.manual_seed(cfg.seed)
    model = runtime.place(create_model(decoder=cfg.decoder, encoder=cfg.encoder, num_classes=3))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = SegmentationLoss(bce_weight=cfg.bce_weight)
    aug = create_augmentation(cfg.augment, crop=cfg.crop)
    train = data.splits["train"]
    for epoch in range(1, cfg.max_epochs + 1):
        seed = epoch_seed(cfg.seed, epoch)
        ds = CropDataset(train.images, train.masks, aug, length=cfg.samples_per_epoch, seed=seed)
        model.train()
        for images, masks in make_loader(ds, batch_size=cfg.batch_size):
            with runtime.autocast():
                out = model(runtime.prepare(images))
            loss = loss_fn(out, masks)
            opt.zero_grad()
            loss.backward()
            opt.step()
    val = data.splits["val"]
    settings = EvalSettings(num_classes=3, tile=cfg.eval_tile, overlap=cfg.eval_overlap)
    evaluate(model, val.images, val.masks, val.names, loss_fn=loss_fn, runtime=runtime,
             settings=settings)  # fmt: skip
    return time.perf_counter() - t0


def with_tune(config: dict, data, storage: Path) -> tuple[float, list[dict]]:
    """Seconds for ``Tuner.fit`` of one trial (Ray already running), and its reports."""
    from ray import tune

    from trainables.segmentation import segmentation_trainable

    t0 = time.perf_counter()
    trainable = tune.with_resources(
        tune.with_parameters(segmentation_trainable, data=data), {"cpu": 2}
    )
    tuner = tune.Tuner(
        trainable,
        param_space=config,
        run_config=tune.RunConfig(
            storage_path=str(storage), name="overhead", verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )  # fmt: skip
    result = tuner.fit()[0]
    seconds = time.perf_counter() - t0
    return seconds, result.metrics_dataframe.to_dict("records")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--crop", type=int, default=SegmentationConfig.crop)
    parser.add_argument("--samples", type=int, default=SegmentationConfig.samples_per_epoch,
                        help="random crops per epoch")  # fmt: skip
    parser.add_argument("--size", type=int, default=256, help="synthetic image size")
    args = parser.parse_args()
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    config = {"crop": args.crop, "samples_per_epoch": args.samples, "max_epochs": args.epochs,
              "patience": args.epochs}  # fmt: skip
    cfg = SegmentationConfig.from_dict(config)
    print(f"Unet-resnet18, {args.epochs} epochs of {args.samples} crops of {args.crop}², "
          f"batch {cfg.batch_size}, 8 train / 3 val / 3 test images of {args.size}²")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = generate("superalloy", Path(tmp) / "sa", size=args.size, n_train=8, n_val=3)
        data = load_dataset(load_data_spec(root / "data.yaml"))
        torch.set_num_threads(2)
        before = bare_loop(cfg, data)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ours, rows = with_tune(config, data, Path(tmp) / "runs")
        ray.shutdown()
        after = bare_loop(cfg, data)
    print(f"bare PyTorch loop before / after: {before:.1f} s / {after:.1f} s (the machine's drift)")
    report((before + after) / 2, ours, rows)
    return 0


def report(bare: float, ours: float, rows: list[dict]) -> None:
    train = sum(r["time_train_s"] for r in rows)
    val = sum(r["time_eval_s"] for r in rows)
    ckpt = sum(r["time_checkpoint_s"] for r in rows)
    # Between two reports Ray sees one epoch plus the previous report and checkpoint upload.
    own = [r["time_train_s"] + r["time_eval_s"] + r["time_checkpoint_s"] for r in rows]
    upload = sum(r["time_this_iter_s"] - o for r, o in zip(rows[1:], own[1:], strict=True))
    fixed = ours - train - val - ckpt - upload
    n = len(rows)
    print(f"bare PyTorch loop      {bare:7.1f} s   (mean of before and after)")
    print(f"trainable under Tune   {ours:7.1f} s   ratio {ours / bare:.3f} (target <= 1.10)")
    print(f"  training             {train:7.1f} s")
    print(f"  validation per epoch {val:7.1f} s   ({val / n:.2f} s/epoch)")
    print(f"  checkpoint writing   {ckpt:7.1f} s   ({ckpt / n:.2f} s/epoch)")
    print(f"  report + upload      {upload:7.1f} s   ({upload / max(n - 1, 1):.2f} s/epoch)")
    print(f"  fixed per trial      {fixed:7.1f} s   (worker start, imports, final test, upload)")


if __name__ == "__main__":
    sys.exit(main())
