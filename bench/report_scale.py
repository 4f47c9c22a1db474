"""Report build time on a synthetic results set of 10,000 trials × 100 epochs.

Four fake run folders (datasets) of 25 encoders × 5 decoders × 4 init sources × 5 seeds =
2,500 trials each, 100 epochs per trial (so 1,000,000 epoch rows), written by
``analysis.synthetic.make_fake_run``. Times ``build_report`` without accuracy maps (target:
under 15 s on the 2-core development machine) and prints the figure.

Run: ``.venv/bin/python bench/report_scale.py [--keep DIR]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from analysis import build_report
from analysis.synthetic import FakeRunSpec, make_fake_run

TARGET_S = 15.0
DATASETS = ("Super-1", "Super-2", "EBC-1", "EBC-2")
FACTORS = {
    "encoder": [f"enc{i:02d}" for i in range(25)],
    "decoder": ["Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus", "MAnet"],
    "init": ["none", "imagenet", "micronet", "image-micronet"],
}


def make_runs(root: Path) -> list[Path]:
    runs = []
    for i, name in enumerate(DATASETS):
        spec = FakeRunSpec(
            experiment="scale",
            dataset=name,
            factors=FACTORS,
            seeds=tuple(range(5)),
            max_epochs=100,
            rungs=(5, 15, 45),
            seed=i,
            base_iou=0.75 + 0.03 * i,
            full_epochs=True,
        )
        runs.append(make_fake_run(root / name, spec))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write runs and report here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        runs = make_runs(root / "runs")
        t_gen = time.perf_counter() - t0
        trials = sum(len(pd.read_parquet(r / "trials.parquet", columns=["trial"])) for r in runs)
        epochs = sum(len(pd.read_parquet(r / "epochs.parquet", columns=["epoch"])) for r in runs)
        t0 = time.perf_counter()
        out = build_report(runs, out=root / "report", accuracy_maps=False)
        t_report = time.perf_counter() - t0
    print(f"synthetic set: {trials} trials, {epochs} epoch rows (generated in {t_gen:.1f} s)")
    print(f"report built in {t_report:.2f} s (target < {TARGET_S:.0f} s) -> {out}")
    return 0 if t_report < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
