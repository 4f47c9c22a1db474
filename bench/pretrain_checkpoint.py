"""Bytes of a pretraining checkpoint with the best model inline (before) and stored once (now).

One real pretraining trial (resnet18 classifier, synthetic micronet, 64 px, SGD) checkpoints
every epoch with a best store (:mod:`trainables.best_store`), as under Ray. At each epoch the
same state is also written as the trainable wrote it before: ``state.pt`` holding the best
model inline, in every checkpoint. Printed per epoch, side by side: both ``state.pt`` sizes,
the best file written at that checkpoint (once per best epoch), and their ratio. Val top-1 on
a few synthetic images barely moves, so epochs whose best is older come up within a few.

    python bench/pretrain_checkpoint.py [--epochs 4] [--encoder resnet18] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from core.storage import Location
from trainables import checkpoint as ckpt
from trainables.best_store import BestStore
from trainables.classify_data import load_image_folder
from trainables.data.synth import generate
from trainables.pretraining import PretrainConfig, PretrainTrial
from trainables.runtime import Runtime


def side_by_side(trial: PretrainTrial, out: Path) -> dict[str, int]:
    """This epoch's checkpoint as written now and as written before, in bytes."""
    store = trial.best_store
    assert store is not None
    before_files = store.trial.files() if store.trial.is_dir() else {}
    state = trial.state()
    now = ckpt.save(out / "now", state).stat().st_size
    inline = dataclasses.replace(
        state,
        best_model=trial.best_weights(),  # before: always the best copy, also when current
        extra={k: v for k, v in state.extra.items() if k != ckpt.NEEDS},
    )
    before = ckpt.save(out / "before", inline).stat().st_size
    written = sum(n for name, n in store.trial.files().items() if name not in before_files)
    return {"before": before, "now": now, "best_file": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-pretrain-ckpt-"))
    shutil.rmtree(out, ignore_errors=True)
    for sub in ("now", "before"):
        (out / sub).mkdir(parents=True)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    folder = generate("micronet", out / "data", n_train=8, n_val=4, size=64, n_classes=4)
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    cfg = PretrainConfig.from_dict({"encoder": args.encoder, "size": 64, "batch_size": 8,
                                    "max_epochs": args.epochs, "lr": 0.1,
                                    "loader_workers": 0})  # fmt: skip
    store = BestStore(Location.parse(out / "trial"))
    trial = PretrainTrial(cfg, load_image_folder(folder), Runtime(device=torch.device("cpu")),
                          best_store=store)  # fmt: skip
    print(f"{args.encoder}, 64 px, {args.epochs} epochs; bytes per checkpoint (state.pt)")
    print("epoch  best_epoch  before_MB  now_MB  best_file_MB  now/before")
    totals = {"before": 0, "now": 0}
    for _ in range(args.epochs):
        trial.step()
        sizes = side_by_side(trial, out)
        totals["before"] += sizes["before"]
        totals["now"] += sizes["now"] + sizes["best_file"]
        print(f"{trial.epoch:5d}  {trial.best_epoch:10d}  {sizes['before'] / 1e6:9.1f}  "
              f"{sizes['now'] / 1e6:6.1f}  {sizes['best_file'] / 1e6:12.1f}  "
              f"{sizes['now'] / sizes['before']:10.3f}")  # fmt: skip
    ratio = totals["now"] / totals["before"]
    print(
        f"all {args.epochs} checkpoints, best files included: before "
        f"{totals['before'] / 1e6:.1f} MB, now {totals['now'] / 1e6:.1f} MB ({ratio:.3f}x)"
    )
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
