"""Scale of the Ray Tune replay: N replayed trials on G fake GPUs (issue 15 target: 1000 trials
on 64 GPUs in <= 10 minutes on a 2-core machine), Ray's per-trial overhead measured and printed
beside the event replay of the same trial order.

    python bench/simulate_scale.py                       # 1000 trials, 64 fake GPUs
    python bench/simulate_scale.py --trials 200 --gpus 16   # a loaded machine: reduced scale

The curves come from a 30-trial fake run (analysis.synthetic: 10 configurations x 3 seeds, 20
epochs of 10 s each); new trials are bootstrapped from them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from analysis.synthetic import make_fake_run
from search.simulate import SimulateSettings, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--gpus", type=int, default=64)
    parser.add_argument("--speedup", type=float, default=1000.0, help="epoch time / speedup")
    parser.add_argument("--checkpoint-mb", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = make_fake_run(
            Path(tmp) / "run", factors={"decoder": [f"d{i}" for i in range(10)]},
            seeds=(0, 1, 2), max_epochs=20, rungs=(), stop_fraction=0.0, diverge_fraction=0.0,
            error_fraction=0.0, full_epochs=True,
        )  # fmt: skip
        settings = SimulateSettings(
            runs=(str(run),), trials=args.trials, gpus=args.gpus, graces=(2,), etas=(3,),
            orders=1, ray=True, speedup=args.speedup, checkpoint_mb=args.checkpoint_mb,
            out=str(Path(tmp) / "sim"),
        )  # fmt: skip
        t0 = time.monotonic()
        result = simulate(settings, printer=lambda line: None)
        total = time.monotonic() - t0
    ray = result.ray
    print(f"\n{args.trials} trials on {args.gpus} fake GPUs, speedup {args.speedup:g}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"Ray Tune replay: {ray['wall_s']:.0f} s wall ({total:.0f} s with loading and "
          f"the event replays); target <= 600 s")  # fmt: skip
    ratio = ray["trial_epochs"] / ray["event_trial_epochs"]
    print(f"trial-epochs: Ray {ray['trial_epochs']}, event replay of the same order "
          f"{ray['event_trial_epochs']} (ratio {ratio:.3f})")  # fmt: skip
    print(f"Ray's overhead per trial: {ray['overhead_s']:.2f} s of a GPU slot")


if __name__ == "__main__":
    main()
