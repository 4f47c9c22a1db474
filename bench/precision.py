"""Training precision on this CPU: fp32 vs bf16 autocast vs bf16 + channels_last.

Two measurements, side by side, with the trial's own code (``SegmentationTrial``):

1. Training throughput of Unet-resnet18 at 256² crops (images/s, batch 8, 2 threads).
2. Validation IoU after a short training on synthetic superalloy data, for ``--seeds`` seeds
   (each variant trains with the same seeds): the mean of the per-seed differences to fp32
   must be within 0.005 for bf16 to become the CPU default (``precision: auto``). A single
   seed says little: the seed-to-seed spread of fp32 itself is printed beside it.

Run: ``.venv/bin/python bench/precision.py [--steps 4] [--epochs 10] [--seeds 3]``
(about ten minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainables.config import SegmentationConfig  # noqa: E402
from trainables.data.dataset import load_dataset  # noqa: E402
from trainables.data.spec import load_data_spec  # noqa: E402
from trainables.data.synth import generate  # noqa: E402
from trainables.losses import SegmentationLoss  # noqa: E402
from trainables.models import create_model  # noqa: E402
from trainables.runtime import Runtime, cpu_has_bf16  # noqa: E402
from trainables.segmentation import SegmentationTrial, run_trial  # noqa: E402

VARIANTS = {
    "fp32": Runtime(torch.device("cpu")),
    "bf16": Runtime(torch.device("cpu"), torch.bfloat16),
    "bf16+channels_last": Runtime(torch.device("cpu"), torch.bfloat16, channels_last=True),
}
TOLERANCE = 0.005


def throughput(runtime: Runtime, *, steps: int, size: int = 256, batch: int = 8) -> float:
    """Training images/s of Unet-resnet18 (2 warm-up steps not counted)."""
    torch.manual_seed(0)
    model = runtime.place(create_model(decoder="Unet", encoder="resnet18", num_classes=3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = SegmentationLoss()
    x = torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8)
    y = torch.randint(0, 3, (batch, size, size))
    model.train()
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        with runtime.autocast():
            out = model(runtime.prepare(x))
        loss = loss_fn(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def short_training(runtime: Runtime, data, *, epochs: int, seed: int) -> float:
    """Best val IoU after ``epochs`` epochs of the trial protocol."""
    cfg = SegmentationConfig.from_dict(
        {"crop": 128, "batch_size": 8, "samples_per_epoch": 64, "max_epochs": epochs,
         "patience": epochs, "lr": 1e-3, "eval_tile": 256, "eval_overlap": 32, "seed": seed}
    )  # fmt: skip
    reports: list[dict] = []
    trial = SegmentationTrial(cfg, data, runtime)
    run_trial(trial, lambda metrics, folder: reports.append(metrics))
    return max(r["val_iou"] for r in reports)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per variant")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the short training")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per variant")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"CPU native bf16: {cpu_has_bf16()}; threads {torch.get_num_threads()}")
    rates = {name: throughput(rt, steps=args.steps) for name, rt in VARIANTS.items()}
    for name, rate in rates.items():
        print(f"throughput {name:20s} {rate:6.2f} img/s  {rate / rates['fp32']:.2f}x fp32")
    with tempfile.TemporaryDirectory() as tmp:
        root = generate("superalloy", Path(tmp) / "sa", size=256, n_train=6, n_val=3, n_test=1)
        data = load_dataset(load_data_spec(root / "data.yaml"))
        ious = {
            name: [short_training(rt, data, epochs=args.epochs, seed=s) for s in range(args.seeds)]
            for name, rt in VARIANTS.items()
        }
    deltas = {name: mean_delta(v, ious["fp32"]) for name, v in ious.items()}
    for name, values in ious.items():
        per_seed = " ".join(f"{v:.4f}" for v in values)
        print(f"val IoU    {name:20s} {per_seed}  mean {statistics.fmean(values):.4f}  "
              f"({deltas[name]:+.4f} vs fp32, paired)")  # fmt: skip
    spread = statistics.stdev(ious["fp32"]) if args.seeds > 1 else float("nan")
    print(f"fp32 seed-to-seed std {spread:.4f}")
    ok = all(abs(d) <= TOLERANCE for d in deltas.values())
    faster = rates["bf16+channels_last"] > rates["fp32"]
    verdict = "bf16+channels_last" if ok and faster else "fp32"
    print(f"verdict: CPU default precision should be {verdict} (mean IoU tolerance {TOLERANCE})")
    print("note: throughput needs an otherwise idle machine")
    return 0


def mean_delta(values: list[float], reference: list[float]) -> float:
    """Mean of the per-seed differences ``values - reference``."""
    return statistics.fmean(v - r for v, r in zip(values, reference, strict=True))


if __name__ == "__main__":
    sys.exit(main())
