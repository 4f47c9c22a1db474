"""ASHA vs FIFO on a fixed grid of 18 configurations (real trainable, synthetic superalloy data).

Prints, for each scheduler, the best val IoU, the total trial-epochs and the wall time, their
ratios (ASHA / FIFO), and the Spearman rank correlation between the IoU at ASHA's first rung
and the final IoU (from the FIFO run, where every configuration ran to the end).
Target (issue 4): ASHA >= 98 % of FIFO's best IoU with <= 35 % of its trial-epochs.

    python bench/asha_vs_fifo.py [--out bench-out] [--epochs 18] [--grace 2]  # ~20 min, 2 cores
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from scipy.stats import spearmanr

from analysis import results as R
from search.arrivals import ArrivalLog
from search.experiment import load_experiment
from search.launch import run_sweep
from search.simulate_fidelity import report_lines

RECORDED = Path(__file__).parent / "recorded" / "asha_vs_fifo"  # the curves, for the replay
RECORD_FILES = (R.RUN_FILE, R.TRIALS_FILE, R.EPOCHS_FILE, "arrivals.parquet", "experiment.json")

SPACE = {
    "encoder": "resnet18",
    "decoder": ["Unet", "FPN", "Linknet"],
    "lr": [3.0e-4, 1.0e-3, 3.0e-3],
    "bce_weight": [0.5, 0.9],
}  # 3 x 3 x 2 = 18 configurations


def experiment(out: Path, data: Path, scheduler: str, epochs: int, grace: int):
    raw = {
        "name": f"bench-{scheduler}",
        "kind": "segmentation",
        "data": {"root": str(data), "classes": "superalloy"},
        "space": SPACE,
        "repeats": 1,
        "search": {"algorithm": "grid", "seed": 0},
        "scheduler": {"name": scheduler, "max_epochs": epochs, "grace_epochs": grace,
                      "reduction_factor": 3},
        "train": {"crop": 64, "batch_size": 8, "samples_per_epoch": 32, "patience": epochs,
                  "augment": "superalloy", "eval_tile": 128, "eval_overlap": 0},
        "resources": {"cpu": 1, "gpu": 0},
        "fault": {"max_failures": 0, "checkpoints_to_keep": 1},
        "storage": str(out / "runs"),
    }  # fmt: skip
    path = out / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    shutil.rmtree(out / "runs" / raw["name"], ignore_errors=True)
    return load_experiment(path)


def measure(out: Path, data: Path, scheduler: str, epochs: int, grace: int) -> dict:
    exp = experiment(out, data, scheduler, epochs, grace)
    start = time.monotonic()
    result = run_sweep(exp, callbacks=[ArrivalLog(str(exp.run_dir))])
    wall = time.monotonic() - start
    rows = result.trials
    epochs_rows = pq.read_table(result.run_dir / R.EPOCHS_FILE).to_pylist()
    return {
        "best": max(r[R.VAL_IOU] for r in rows if r[R.VAL_IOU] is not None),
        "trial_epochs": len(epochs_rows),
        "wall_s": wall,
        "rows": rows,
        "epochs": epochs_rows,
        "run_dir": Path(str(result.run_dir)),
    }


def record(runs: list[Path], to: Path) -> None:
    """The run folders' small files (no checkpoints): what `microsweep simulate` replays."""
    for run in runs:
        (to / run.name).mkdir(parents=True, exist_ok=True)
        for name in RECORD_FILES:
            if (run / name).is_file():
                shutil.copyfile(run / name, to / run.name / name)


def rank_correlation(fifo: dict, rung: int) -> float:
    at_rung = {e[R.TRIAL]: e[R.VAL_IOU] for e in fifo["epochs"] if e[R.EPOCH] == rung}
    final = {r[R.TRIAL]: r[R.VAL_IOU] for r in fifo["rows"]}
    names = sorted(set(at_rung) & set(final))
    return float(spearmanr([at_rung[n] for n in names], [final[n] for n in names]).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--grace", type=int, default=2, help="epochs to the first rung")
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        help=f"copy the run folders' curves here (the repository's: {RECORDED})",
    )
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from trainables.data.synth import generate

    data = generate("superalloy", out / "data", seed=0, n_train=6, n_val=3, n_test=2, size=128,
                    overwrite=True)  # fmt: skip
    asha = measure(out, data, "asha", args.epochs, args.grace)
    fifo = measure(out, data, "fifo", args.epochs, args.grace)
    print(f"\n18 configurations, max {args.epochs} epochs, grace {args.grace}, eta 3, 2 CPUs")
    print(f"{'':6s} {'best val IoU':>12s} {'trial-epochs':>12s} {'wall s':>8s}")
    for name, m in (("ASHA", asha), ("FIFO", fifo)):
        print(f"{name:6s} {m['best']:12.4f} {m['trial_epochs']:12d} {m['wall_s']:8.0f}")
    ratio = {k: asha[k] / fifo[k] for k in ("best", "trial_epochs", "wall_s")}
    print(f"ratio  {ratio['best']:12.3f} {ratio['trial_epochs']:12.3f} {ratio['wall_s']:8.3f}")
    rho = rank_correlation(fifo, args.grace)
    print(f"Spearman(IoU at the first rung (epoch {args.grace}), final IoU) = {rho:.3f}")
    print("\nThe replay of these runs (bench/simulate_fidelity.py):")
    print("\n".join(report_lines(asha["run_dir"], fifo["run_dir"], slots=2, orders=200)))
    if args.record:
        record([asha["run_dir"], fifo["run_dir"]], args.record.resolve())
        print(f"recorded the run folders' curves in {args.record}")


if __name__ == "__main__":
    main()
