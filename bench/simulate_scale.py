"""Scale of the Ray Tune replay: N replayed trials on G fake GPUs (issue 15 target: 1000 trials
on 64 GPUs in <= 10 minutes on a 2-core machine), Ray's per-trial overhead measured and printed
beside the event replay of the same trial order.

    python bench/simulate_scale.py                       # 1000 trials, 64 fake GPUs
    python bench/simulate_scale.py --trials 200 --gpus 16   # a loaded machine: reduced scale
    python bench/simulate_scale.py --trials 100 --gpus 16 --profile   # where the driver's time goes

The curves come from a 30-trial fake run (analysis.synthetic: 10 configurations x 3 seeds, 20
epochs of 10 s each); new trials are bootstrapped from them.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
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
    parser.add_argument("--profile", action="store_true", help="the driver's time by part")
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
        prof = cProfile.Profile() if args.profile else None
        t0 = time.monotonic()
        if prof:
            prof.enable()
        result = simulate(settings, printer=lambda line: None)
        if prof:
            prof.disable()
        total = time.monotonic() - t0
    ray = result.ray
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{args.trials} trials on {args.gpus} fake GPUs, speedup {args.speedup:g}, "
          f"{os.cpu_count()} CPUs, load average {load} (1 / 5 / 15 min)")  # fmt: skip
    print(f"Ray Tune replay: {ray['wall_s']:.0f} s wall ({total:.0f} s with loading and "
          f"the event replays); target <= 600 s")  # fmt: skip
    ratio = ray["trial_epochs"] / ray["event_trial_epochs"]
    print(f"trial-epochs: Ray {ray['trial_epochs']}, event replay of the same order "
          f"{ray['event_trial_epochs']} (ratio {ratio:.3f})")  # fmt: skip
    print(f"Ray's overhead per trial: {ray['overhead_s']:.2f} s of a GPU slot; "
          f"{ray['wall_s'] / args.trials:.3f} s of wall time per trial, "
          f"{ray['trial_epochs'] / ray['wall_s']:.1f} results/s")  # fmt: skip
    if prof:
        print_parts(pstats.Stats(prof), args.trials)


# the driver's time (Ray Tune's controller runs in it) in parts: (label, file, function)
PARTS = (
    ("waiting for trial workers (ray.wait)", "_private/worker.py", "wait"),
    ("Ray's experiment snapshots", "experiment_state.py", "sync_up_experiment_state"),
    ("Ray's result/TensorBoard loggers", "tune/logger/logger.py", "on_trial_result"),
    ("checkpoint bookkeeping and deletes", "checkpoint_manager.py", "register_checkpoint"),
    ("our results writer: trial ends", "search/results_writer.py", "on_trial_complete"),
    ("our results writer: results", "search/results_writer.py", "on_trial_result"),
    ("our console", "search/console.py", "on_trial_result"),
    ("our storage guard", "search/storage_guard.py", "on_trial_result"),
    ("the whole Tuner.fit", "ray/tune/tuner.py", "fit"),
)


def print_parts(stats: pstats.Stats, trials: int) -> None:
    cumulative: dict[str, float] = {}
    for (path, _, func), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        for label, file, name in PARTS:
            if func == name and path.endswith(file):
                cumulative[label] = cumulative.get(label, 0.0) + cum
    print("driver time (cProfile, cumulative): seconds, ms per trial")
    for label, *_ in PARTS:
        sec = cumulative.get(label, 0.0)
        print(f"  {label:40s} {sec:7.1f} s {1000 * sec / trials:7.1f} ms")


if __name__ == "__main__":
    main()
