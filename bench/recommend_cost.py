"""What ``recommend``'s confirm stage costs, as a multiple of one full trial.

A tiny ``recommend`` (synthetic superalloy, resnet18 x {Unet, FPN, Linknet} under ASHA, then
the top ``--top`` configurations x ``--seeds`` new seeds to the full budget) on a local Ray:
prints the wall time of the search stage, of the confirm stage, and the mean wall time of one
full (completed) trial, and the confirm stage as a multiple of that trial.

Run: ``.venv/bin/python bench/recommend_cost.py [--top 2] [--seeds 2] [--epochs 4]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis import results as R  # noqa: E402
from analysis.load import load_runs  # noqa: E402
from analysis.recommend import candidates  # noqa: E402
from search.experiment import parse_experiment  # noqa: E402
from search.launch import run_sweep  # noqa: E402
from search.recommend import confirm_experiment  # noqa: E402
from trainables.data.synth import generate  # noqa: E402


def experiment(tmp: Path, epochs: int):
    data = generate("superalloy", tmp / "data", seed=0, n_train=4, n_val=2, n_test=2, size=96)
    raw = {
        "name": "bench", "storage": str(tmp / "runs"),
        "data": {"root": str(data), "classes": "superalloy"},
        "space": {"encoder": "resnet18", "decoder": ["Unet", "FPN", "Linknet"], "lr": 1e-3},
        "scheduler": {"name": "asha", "max_epochs": epochs, "grace_epochs": 1},
        "train": {"crop": 64, "batch_size": 4, "samples_per_epoch": 8, "precision": "fp32"},
        "resources": {"cpu": 1},
    }  # fmt: skip
    return parse_experiment(raw, base_dir=tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exp = experiment(Path(tmp), args.epochs)
        t0 = time.monotonic()
        run_sweep(exp)
        t1 = time.monotonic()
        factors = ["decoder"]
        picks = candidates(load_runs([exp.run_dir]), factors, top=args.top)
        confirm = confirm_experiment(exp, [c.config for c in picks], seeds=args.seeds)
        run_sweep(confirm, require_trained=False)
        t2 = time.monotonic()
        trials = load_runs([exp.run_dir])
        done = trials[(trials[R.STAGE] == R.CONFIRM) & (trials[R.STATUS] == R.COMPLETED)]
        one = statistics.mean(done[R.WALL_S].astype(float))
    print(f"search stage: {t1 - t0:.1f} s; confirm stage ({len(done)} trials): {t2 - t1:.1f} s")
    print(f"one full trial: {one:.1f} s (mean of the confirm trials' wall time)")
    print(f"confirm stage = {(t2 - t1) / one:.2f} x one full trial "
          f"({args.top} configurations x {args.seeds} seeds, 2 CPUs, 1 CPU per trial)")  # fmt: skip


if __name__ == "__main__":
    main()
