"""How long ``analysis.importance`` takes, by number of completed trials and evaluator.

Fake run folders (``analysis.synthetic``) with 3 factors; for each size it prints the seconds
of one point estimate per evaluator and of ``importance(..., n_boot=B)`` (both evaluators,
B resamples), measured side by side in one run. fANOVA needs scikit-learn.

    python bench/importance_time.py [--boot 100] [--sizes 1,4,16]   # seeds of 24 configs
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from analysis import importance, load_runs
from analysis import param_importance as I
from analysis.synthetic import make_fake_run


def fake_trials(root: Path, seeds: int):
    factors = {
        "decoder": ["Unet", "FPN", "Linknet"],
        "encoder": ["resnet18", "resnet50"],
        "init": ["imagenet", "micronet"],
        "lr": [1.0e-4, 1.0e-3],
    }
    run = make_fake_run(root / f"run{seeds}", factors=factors, seeds=tuple(range(seeds)))
    return load_runs([run])


def timed(trials, **options) -> float:
    """Seconds of one ``importance(trials, **options)``."""
    start = time.perf_counter()
    importance(trials, **options)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boot", type=int, default=I.N_BOOT)
    parser.add_argument("--sizes", default="1,4,16", help="seeds per configuration (24 configs)")
    args = parser.parse_args()
    usable, skipped = I.available_evaluators(("fanova", "ped_anova"))
    for line in skipped:
        print(f"skipped: {line}")
    with tempfile.TemporaryDirectory() as tmp:
        for seeds in (int(s) for s in args.sizes.split(",")):
            trials = fake_trials(Path(tmp), seeds)
            n = len(I.usable_trials(trials))
            parts = [f"{n:5d} completed trials:"]
            for name in usable:
                sec = timed(trials, evaluators=(name,), n_boot=0)
                parts.append(f"{I.LABELS[name]} {sec:.3f} s")
            sec = timed(trials, evaluators=usable, n_boot=args.boot)
            parts.append(f"all with {args.boot} resamples {sec:.1f} s")
            print("  ".join(parts), flush=True)


if __name__ == "__main__":
    main()
