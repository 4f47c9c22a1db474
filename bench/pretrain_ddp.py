"""Data-parallel pretraining through Ray Train: 1 vs 2 workers, training images/s.

Runs the pretraining worker loop (``trainables.pretrain_ddp``) in a ``TorchTrainer`` with 1 and
then 2 workers of 1 CPU each (``--gpu``: 1 GPU each, NCCL) on the same synthetic folder, and
prints each run's training images/s (from the trial's own ``wall_s``, i.e. without Ray Train's
start-up), their ratio, and the share of that time the training loop waited for its loader
(``data_wait_s``: near 0 when the loader keeps the GPU or CPU busy). On the 2-core CPU
machine the ratio is printed, not a target.

Run: ``.venv/bin/python bench/pretrain_ddp.py [--images 2000 --epochs 2 --size 64]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run(workers: int, folder: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(training images/s, the share of the trial's time its loop waited for the loader)."""
    from ray import train
    from ray.train.torch import TorchTrainer

    from core.storage import Location
    from trainables.classify_data import load_image_folder
    from trainables.pretrain_ddp import _worker_loop

    gpu = 1.0 if args.gpu else 0.0
    config = {"encoder": args.encoder, "size": args.size, "batch_size": args.batch,
              "samples_per_epoch": args.samples, "max_epochs": args.epochs, "workers": workers,
              "worker_cpu": 1.0, "worker_gpu": gpu, "loader_workers": 1}  # fmt: skip
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={
            "config": config,
            "data": load_image_folder(folder),
            "checkpoint": None,
            "trial_dir": Location.parse(str(args.root / f"trial-{workers}")),
        },
        scaling_config=train.ScalingConfig(
            num_workers=workers, use_gpu=bool(gpu), resources_per_worker={"CPU": 1, "GPU": gpu}
        ),
        run_config=train.RunConfig(
            name=f"bench-{workers}-{time.time_ns()}", storage_path=str(args.root / "ray")
        ),
    )
    result = trainer.fit()
    wall = float(result.metrics["wall_s"])
    waited = float(result.metrics_dataframe["data_wait_s"].sum())  # rank 0's, every epoch
    return args.samples * args.epochs / wall, waited / wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/microsweep-bench-ddp"))
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--samples", type=int, default=512, help="images per epoch (global)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=16, help="per worker")
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--gpu", action="store_true", help="1 GPU per worker")
    args = p.parse_args()
    from search.launch import start_ray
    from trainables.data.synth import generate

    folder = args.root / "micronet"
    if not (folder / "train").is_dir():
        generate("micronet", folder, n_train=args.images // 4, n_val=16, size=args.size,
                 n_classes=4, overwrite=True)  # fmt: skip
    start_ray(None, num_cpus=2 if not args.gpu else None)
    (one, wait1), (two, wait2) = run(1, folder, args), run(2, folder, args)
    print(f"1 worker: {one:.1f} img/s   2 workers: {two:.1f} img/s   ratio {two / one:.2f}x")
    print(f"waiting for the loader: {wait1:.0%} (1 worker), {wait2:.0%} (2 workers) of the "
          "trial's time; near 0 means the loader keeps the device busy")  # fmt: skip


if __name__ == "__main__":
    main()
