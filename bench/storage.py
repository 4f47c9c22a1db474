"""Storage of the demo sweep with ``fault.keep: all`` and with the default (``best``), side by side.

The demo preset (spaces/presets/demo.yaml: ASHA, checkpoints_to_keep 1) made smaller to run in
a few minutes on 2 cores: resnet18, Unet and FPN, init none (no downloads), 2 seeds, 4 epochs,
one trial at a time (with two, asynchronous ASHA's decisions vary between the runs).
Prints, per mode, the bytes on storage after the sweep and the peak during it (the run folder's
size sampled every 0.2 s in a thread), the median bytes of one checkpoint folder (an epoch's
checkpoint cost), and the dry run's predicted footprint (search.footprint) against the measured
one. Targets (issue 12): best <= 0.1x all after the sweep; prediction within 25 %.

``--pretraining`` runs a tiny pretraining sweep instead (:func:`pretraining_experiment`:
resnet18 classifiers on synthetic micronet at 32 px, SGD, 2 trials of 4 epochs, no zoo
export, so that ``best`` keeps each trial's ``model.safetensors.zst``), both ways, one trial at a
time: the same figures, for the task's own estimate (SGD's momentum, not Adam's moments).

``--demo`` runs the real ``make demo`` experiment instead (search.demo: its data, its two
zoo encoders, pretrained once for 1 epoch instead of 10 and shared, every trial of its grid),
both ways at the same time in two processes, one trial at a time in each, and checks that
``trials.parquet`` holds the same results in both runs.

    python bench/storage.py [--out bench-storage] [--epochs 4] [--repeats 2]   # ~5 min, 2 cores
    python bench/storage.py --pretraining [--out bench-storage] [--workers 2]  # ~1 min, 2 cores
    python bench/storage.py --demo [--out bench-storage]                       # ~30 min, 2 cores
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import threading
import time
from pathlib import Path

from core.storage import Location
from search.experiment import load_experiment
from search.footprint import estimate_footprint
from search.launch import run_sweep
from search.plan import make_plan
from spaces.presets import preset_path


class PeakSampler(threading.Thread):
    """The largest size ``folder`` reached while it runs (sampled every ``every`` s)."""

    def __init__(self, folder: Path, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.folder, self.every, self.peak = folder, every, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, folder_bytes(self.folder))
            self._done.wait(self.every)

    def stop(self) -> int:
        self._done.set()
        self.join()
        self.peak = max(self.peak, folder_bytes(self.folder))
        return self.peak


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # deleted while we looked (Ray, the pruning)
                total += os.stat(os.path.join(root, name)).st_size
    return total


def experiment(out: Path, data: Path, keep: str, epochs: int, repeats: int):
    overrides = [
        f"name=storage-{keep}", f"data.root={data}", f"storage={out / 'runs'}",
        "space.init=[none]", f"repeats={repeats}", f"scheduler.max_epochs={epochs}",
        "scheduler.grace_epochs=1", "scheduler.reduction_factor=2",
        "train.samples_per_epoch=8", f"fault.keep={keep}",
        "resources.cpu=2",  # one trial at a time: ASHA decides the same in both runs
    ]  # fmt: skip
    return load_experiment(preset_path("demo"), overrides=overrides)


def prepare_demo(out: Path) -> None:
    """The demo's data and zoo, made once for both modes (kept if a run left them)."""
    from search import demo

    micronet, _ = demo.make_data(out, quick=False)
    if not all((out / "zoo" / f"demo-{e}.safetensors").is_file() for e in demo.ENCODERS):
        demo.pretrain(micronet, out / "zoo", quick=False, epochs=1)  # its weights change no size


def demo_experiment(out: Path, keep: str):
    """The ``make demo`` experiment with ``fault.keep: keep``, one trial at a time (so that
    ASHA decides the same in both modes)."""
    from search import demo

    data = out / "data" / "superalloy"
    extra = [f"name=demo-{keep}", f"fault.keep={keep}", "resources.cpu=2"]
    return demo.demo_experiment(out, data, out / "zoo", quick=False, extra=extra)


def demo_side_by_side(out: Path) -> dict[str, dict]:
    """Both modes at the same time, each in its own process (and Ray): on a machine shared
    with other work that halves the wall time; each run folder is measured on its own."""
    import json
    import subprocess
    import sys

    prepare_demo(out)
    procs = {
        keep: subprocess.Popen([sys.executable, __file__, "--demo-mode", keep, "--out", str(out)])
        for keep in ("all", "best")
    }
    for keep, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"the keep: {keep} run failed")
    figures = {k: json.loads((out / f"figures-{k}.json").read_text()) for k in procs}
    for f in figures.values():
        f["run"] = Path(f["run"])
    return figures


def small_experiments(out: Path, epochs: int, repeats: int):
    from trainables.data.synth import generate

    data = generate("superalloy", out / "data", seed=0, n_train=4, n_val=2, n_test=2,
                    size=128, overwrite=True)  # fmt: skip
    for keep in ("all", "best"):
        yield keep, experiment(out, data, keep, epochs, repeats)


def pretraining_experiment(
    out: Path, data: Path, keep: str, *, epochs: int = 4, repeats: int = 2, workers: int = 1
):
    """A tiny pretraining sweep (``RUN = out/runs/pretrain-KEEP``): resnet18 at 32 px,
    ``checkpoints_to_keep: 1``, one trial at a time; lr 1e-6 keeps val top-1 at its first
    value, so that every checkpoint after the first names a best file and Ray holds the best
    and the latest checkpoint while it writes the next: the estimate's worst case, happening."""
    from search.experiment import parse_experiment

    train = {"encoder": "resnet18", "size": 32, "batch_size": 4, "samples_per_epoch": 8,
             "lr": 1e-6, "precision": "fp32", "loader_workers": 0}  # fmt: skip
    raw = {
        "name": f"pretrain-{keep}", "kind": "pretraining", "data": {"root": str(data)},
        "space": {}, "train": train, "repeats": repeats,
        "scheduler": {"name": "fifo", "max_epochs": epochs},
        "fault": {"keep": keep, "checkpoints_to_keep": 1},
        "resources": {"cpu": max(1, (os.cpu_count() or 1) // workers),
                      "workers_per_trial": workers}, "storage": str(out / "runs"),
    }  # fmt: skip
    return parse_experiment(raw, base_dir=out)


def pretraining_experiments(out: Path, epochs: int, repeats: int, workers: int = 1):
    from trainables.data.synth import generate

    data = generate("micronet", out / "data", n_train=4, n_val=2, size=64, n_classes=3,
                    overwrite=True)  # fmt: skip
    for keep in ("all", "best"):
        yield (
            keep,
            pretraining_experiment(
                out, data, keep, epochs=epochs, repeats=repeats, workers=workers
            ),
        )


def state_sizes(run: Path) -> list[int]:
    """Bytes of each ``state.pt`` left in the run: what one epoch's checkpoint writes."""
    return [p.stat().st_size for p in run.glob("*/checkpoint_*/state.pt")]


def best_sizes(run: Path) -> list[int]:
    """Bytes of each best-weights file left (``RUN/<trial>/best/``, stored once per trial)."""
    return [p.stat().st_size for p in run.glob("*/best/*.safetensors")]


def breakdown(run: Path) -> dict[str, int]:
    """Bytes left in ``run`` by kind: what the final size is made of."""
    kinds: dict[str, int] = {}
    for path in run.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(run).parts
        if len(rel) == 1 or rel[0] in ("logs", "truth"):
            kind = f"run: {rel[0] if len(rel) > 1 else 'files'}"
        elif rel[1] == "best":
            kind = "trial: best/"
        elif rel[1].startswith("checkpoint_"):
            kind = f"checkpoint: {rel[2]}" if len(rel) > 2 else "checkpoint: ?"
        else:
            kind = "trial: Ray's files"
        kinds[kind] = kinds.get(kind, 0) + path.stat().st_size
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


VOLATILE = ("experiment", "cpu", "wall_s", "node", "trial", "checkpoint", "error")


def same_results(runs: list[Path]) -> str:
    """Whether the runs' trials.parquet hold the same rows (all but names, paths, times)."""
    import pyarrow.parquet as pq

    tables = []
    for run in runs:
        rows = pq.read_table(run / "trials.parquet").to_pylist()
        rows = [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]
        tables.append(sorted(rows, key=lambda r: sorted((k, str(v)) for k, v in r.items())))
    if tables[0] == tables[1]:
        return f"identical ({len(tables[0])} trials)"
    differ = sum(a != b for a, b in zip(*tables, strict=False))
    return f"DIFFERENT: {differ} of {len(tables[0])} rows (or counts {[len(t) for t in tables]})"


def measure(exp, *, every: float = 0.2) -> dict[str, float]:
    """Run ``exp``; its run folder's final and peak bytes (sampled every ``every`` s) beside
    the dry run's estimate."""
    run = Path(str(exp.run_dir))
    predicted = estimate_footprint(make_plan(exp))
    sampler = PeakSampler(run, every=every)
    sampler.start()
    t0 = time.perf_counter()
    result = run_sweep(exp)
    wall = time.perf_counter() - t0
    peak = sampler.stop()
    return {
        "final": folder_bytes(run), "peak": peak, "wall_s": wall,
        "states": state_sizes(run), "bests": best_sizes(run), "run": run,
        "predicted_final": predicted.final_bytes, "predicted_peak": predicted.peak_bytes,
        "trials": len(result.trials), "counts": result.counts,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-storage"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--demo", action="store_true", help="the real `make demo` experiment")
    parser.add_argument("--pretraining", action="store_true", help="a tiny pretraining sweep")
    parser.add_argument("--workers", type=int, default=1, help="--pretraining: per trial (DDP)")
    parser.add_argument("--demo-mode", choices=("all", "best"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.demo_mode:  # one mode of --demo, in its own process
        import json

        shutil.rmtree(args.out / "runs" / f"demo-{args.demo_mode}", ignore_errors=True)
        got = measure(demo_experiment(args.out, args.demo_mode))
        (args.out / f"figures-{args.demo_mode}.json").write_text(json.dumps(got, default=str))
        print(f"[{args.demo_mode}] {got}", flush=True)  # the raw figures
        return
    figures = {}
    if args.demo:
        figures = demo_side_by_side(args.out)
    else:
        shutil.rmtree(args.out, ignore_errors=True)
        if args.pretraining:
            sweeps = pretraining_experiments(args.out, args.epochs, args.repeats, args.workers)
        else:
            sweeps = small_experiments(args.out, args.epochs, args.repeats)
        for keep, exp in sweeps:
            # a tiny trial's checkpoint lives a fraction of a second before Ray rotates it
            figures[keep] = measure(exp, every=0.01 if args.pretraining else 0.2)
            print(f"[{keep}] {figures[keep]}", flush=True)  # the raw figures, before the table
    mb = 1e6
    print(f"{'':28}{'keep: all':>12}{'keep: best':>12}{'best/all':>10}")
    for key, label in (("final", "after the sweep (MB)"), ("peak", "peak during it (MB)")):
        a, b = figures["all"][key], figures["best"][key]
        print(f"{label:28}{a / mb:12.1f}{b / mb:12.1f}{b / a if a else float('nan'):10.3f}")
    states = figures["all"]["states"]
    print(
        f"one epoch's checkpoint (state.pt, keep: all): median {statistics.median(states) / mb:.1f}"
        f" MB, min {min(states) / mb:.1f}, max {max(states) / mb:.1f} ({len(states)} left)"
    )
    bests = figures["all"]["bests"]
    print(
        f"best weights stored once per trial (best/, keep: all): {len(bests)} file(s) left, "
        f"{sum(bests) / mb:.1f} MB in all"
    )
    print(f"trials.parquet: {same_results([figures[k]['run'] for k in ('all', 'best')])}")
    left = ", ".join(f"{k} {v / mb:.1f}" for k, v in breakdown(figures["best"]["run"]).items())
    print(f"what keep: best leaves (MB): {left}")
    for keep in ("all", "best"):
        f = figures[keep]
        for key in ("final", "peak"):
            ratio = f[f"predicted_{key}"] / f[key]
            print(f"[{keep}] predicted {key} {f[f'predicted_{key}'] / mb:.1f} MB vs measured "
                  f"{f[key] / mb:.1f} MB: ratio {ratio:.2f}")  # fmt: skip
    print(f"wall: all {figures['all']['wall_s']:.0f} s, best {figures['best']['wall_s']:.0f} s; "
          f"statuses {figures['all']['counts']} / {figures['best']['counts']}")  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"(storage {Location.parse(args.out / 'runs')}, {os.cpu_count()} cores, shared; "
          f"load average at the end {load})")  # fmt: skip


if __name__ == "__main__":
    main()
