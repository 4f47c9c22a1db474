"""What the trainable costs on top of a bare PyTorch loop: same model, data, epochs.

- ``bare``: a plain loop (model, Adam, the paper's loss, the same random crops) training
  ``--epochs`` epochs, then one whole-image validation; no Ray, no checkpoints. It runs as a
  fresh script process, imports and warm-up included, as a user's own script pays them.
- The runs alternate, bare / trainable / bare / ... for ``--rounds`` rounds, and each
  trainable run is compared with the mean of the bare runs either side of it: identical runs
  on this VM differ by several percent from one minute to the next, so one pair proves little.
- ``trainable``: ``segmentation_trainable`` under a local ``tune.Tuner`` (Ray started first,
  not counted), with per-epoch whole-image validation, checkpoints and reports, and the final
  test evaluation of the best model.

The trial configuration is the trainable's defaults (Unet-resnet18, fp32 on CPU, 256² crops,
64 crops per epoch, batch 8) unless ``--crop``/``--samples`` say otherwise.

Prints the wall-time ratio (target <= 1.10) and where the extra time goes, from the
trainable's own per-epoch timings and Ray's time between reports: validation, checkpoint
writing, reporting with checkpoint upload (per epoch), and the fixed cost of a trial (worker
start and imports, model build, final test evaluation, last upload).

Run: ``.venv/bin/python bench/trainable_overhead.py [--rounds 3] [--epochs 12] [--crop 256]
[--samples 64]`` (about 7 minutes a round on 2 cores at the defaults).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()  # the bare script's imports count from here

import torch  # noqa: E402

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


def bare_loop(cfg: SegmentationConfig, data) -> tuple[float, float]:
    """Seconds for the bare loop (``max_epochs`` epochs, one validation) and for its training."""
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
    trained = time.perf_counter() - t0
    val = data.splits["val"]
    settings = EvalSettings(num_classes=3, tile=cfg.eval_tile, overlap=cfg.eval_overlap)
    evaluate(model, val.images, val.masks, val.names, loss_fn=loss_fn, runtime=runtime,
             settings=settings)  # fmt: skip
    return time.perf_counter() - t0, trained


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
    args = parse_args()
    config = {"crop": args.crop, "samples_per_epoch": args.samples, "max_epochs": args.epochs,
              "patience": args.epochs}  # fmt: skip
    cfg = SegmentationConfig.from_dict(config)
    if args.bare_child:
        torch.set_num_threads(2)
        imports = time.perf_counter() - START
        data = load_dataset(load_data_spec(Path(args.bare_child) / "data.yaml"))
        _, trained = bare_loop(cfg, data)
        print(json.dumps({"imports": imports, "train": trained}))
        return 0
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    print(f"Unet-resnet18, {args.epochs} epochs of {args.samples} crops of {args.crop}², "
          f"batch {cfg.batch_size}, 8 train / 3 val / 3 test images of {args.size}², "
          f"{args.rounds} rounds", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = generate("superalloy", Path(tmp) / "sa", size=args.size, n_train=8, n_val=3)
        data = load_dataset(load_data_spec(root / "data.yaml"))
        bares, runs = [bare_process(args, root)], []
        for i in range(args.rounds):
            runs.append(one_trial(config, data, Path(tmp) / f"runs{i}"))
            bares.append(bare_process(args, root))
            ratio = runs[-1][0] / ((bares[-2]["wall"] + bares[-1]["wall"]) / 2)
            print(f"round {i + 1}: bare {bares[-2]['wall']:.1f} s, trainable {runs[-1][0]:.1f} s, "
                  f"bare {bares[-1]['wall']:.1f} s, ratio {ratio:.3f}", flush=True)  # fmt: skip
    summarize(bares, runs)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="trainable runs, between bare ones")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--crop", type=int, default=SegmentationConfig.crop)
    parser.add_argument("--samples", type=int, default=SegmentationConfig.samples_per_epoch,
                        help="random crops per epoch")  # fmt: skip
    parser.add_argument("--size", type=int, default=256, help="synthetic image size")
    parser.add_argument("--bare-child", metavar="DATA", help=argparse.SUPPRESS)
    return parser.parse_args()


def bare_process(args: argparse.Namespace, root: Path) -> dict[str, float]:
    """The bare loop as a user's script runs it: a fresh process, imports and all."""
    command = [sys.executable, __file__, "--bare-child", str(root), "--epochs", str(args.epochs),
               "--crop", str(args.crop), "--samples", str(args.samples)]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return {"wall": wall, **json.loads(out.stdout.strip().splitlines()[-1])}


def one_trial(config: dict, data, storage: Path) -> tuple[float, list[dict]]:
    """One trainable run on a fresh local Ray (its start and shutdown not counted)."""
    import ray

    from search.launch import start_ray

    start_ray(None, num_cpus=2)
    try:
        return with_tune(config, data, storage)
    finally:
        ray.shutdown()


def summarize(bares: list[dict[str, float]], runs: list[tuple[float, list[dict]]]) -> None:
    around = [{k: (a[k] + b[k]) / 2 for k in a} for a, b in itertools.pairwise(bares)]
    ratios = [t / b["wall"] for (t, _), b in zip(runs, around, strict=True)]
    total = sum(t for t, _ in runs) / sum(b["wall"] for b in around)
    listed = ", ".join(f"{r:.3f}" for r in ratios)
    print(f"ratios {listed}; median {statistics.median(ratios):.3f}, "
          f"all rounds together {total:.3f} (target <= 1.10)")  # fmt: skip
    median = sorted(range(len(runs)), key=ratios.__getitem__)[len(runs) // 2]
    print(f"where the time goes in the median round ({median + 1}):")
    report(around[median], *runs[median])


def report(bare: dict[str, float], ours: float, rows: list[dict]) -> None:
    train = sum(r["time_train_s"] for r in rows)
    val = sum(r["time_eval_s"] for r in rows)
    ckpt = sum(r["time_checkpoint_s"] for r in rows)
    # Between two reports Ray sees one epoch plus the previous report and checkpoint upload.
    own = [r["time_train_s"] + r["time_eval_s"] + r["time_checkpoint_s"] for r in rows]
    upload = sum(r["time_this_iter_s"] - o for r, o in zip(rows[1:], own[1:], strict=True))
    fixed = ours - train - val - ckpt - upload
    n = len(rows)
    wall, imports = bare["wall"], bare["imports"]
    print(f"bare PyTorch script    {wall:7.1f} s   (mean of before and after; its imports "
          f"{imports:.1f} s, its training {bare['train']:.1f} s)")  # fmt: skip
    print(f"trainable under Tune   {ours:7.1f} s   ratio {ours / wall:.3f} (target <= 1.10); "
          f"against the script less its imports {ours / (wall - imports):.3f}")  # fmt: skip
    print(f"  training             {train:7.1f} s")
    print(f"  validation per epoch {val:7.1f} s   ({val / n:.2f} s/epoch)")
    print(f"  checkpoint writing   {ckpt:7.1f} s   ({ckpt / n:.2f} s/epoch)")
    print(f"  report + upload      {upload:7.1f} s   ({upload / max(n - 1, 1):.2f} s/epoch)")
    print(f"  fixed per trial      {fixed:7.1f} s   (worker start, imports, final test, upload)")


if __name__ == "__main__":
    sys.exit(main())
