"""``make demo``: synthetic data -> pretrained zoo encoder -> ASHA sweep -> report, on 2 CPUs.

Usage::

    python -m search.demo --out demo-out            # minutes on 2 cores
    python -m search.demo --out /tmp/demo --quick   # the smallest version (tests)

Steps: generate a synthetic ``micronet`` image folder and a synthetic ``superalloy`` dataset;
pretrain a small encoder on the first and export it to an encoder zoo; sweep decoders x init
{none, that zoo encoder} x repeats on the second with ASHA on the local Ray (the ``demo``
preset); print where results are and, when the analysis package offers it, write the report.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.storage import Location
from search.experiment import Experiment, load_experiment
from spaces.presets import preset_path

ENCODERS = ("resnet18", "mobilenet_v2")
# One init value for every encoder of the sweep: the zoo entry pretrained for that encoder.
ZOO_INIT = "zoo:demo-{encoder}"


def _say(line: str) -> None:
    print(f"[demo] {line}", flush=True)


def make_data(out: Path, *, quick: bool) -> tuple[Path, Path]:
    """Synthetic ``micronet`` (classification) and ``superalloy`` (segmentation) folders."""
    from trainables.data.synth import generate

    n = 1 if quick else 2
    micronet = generate(
        "micronet", out / "data" / "micronet", seed=0, n_train=4 if quick else 24,
        n_val=2 if quick else 8, size=64, n_classes=4, overwrite=True,
    )  # fmt: skip
    superalloy = generate(
        "superalloy", out / "data" / "superalloy", seed=0, n_train=4 * n, n_val=2, n_test=2,
        size=96 if quick else 128, different_test=not quick, overwrite=True,
    )  # fmt: skip
    return micronet, superalloy


def pretrain(micronet: Path, zoo: Path, *, quick: bool, epochs: int | None = None) -> None:
    """Pretrain each demo encoder on the synthetic micronet set into the zoo (``demo-ENCODER``);
    ``epochs`` replaces the default (bench/storage.py: only the sweep's storage matters)."""
    from search.pretrain import run_pretrain

    for encoder in ENCODERS[:1] if quick else ENCODERS:
        _say(f"pretraining {encoder} on synthetic micronet")
        config = {
            "encoder": encoder,
            "init": "none",
            "zoo_dir": str(zoo),
            "zoo_name": f"demo-{encoder}",
            "overwrite": True,
            "max_epochs": epochs or (1 if quick else 10),
            "patience": 10,
            "size": 64,
            "batch_size": 16,
            "seed": 0,
        }  # fmt: skip  (the paper's lr 0.1 at batch 1024, scaled to 16, with warm-up)
        lines = _EpochLines()  # one summary line instead of an epoch line each
        runs = zoo.parent / "pretrain-runs" / encoder  # its own: the log it names stays
        entry = run_pretrain(micronet, config, storage=runs, printer=lines)
        _say(f"zoo encoder {entry.name}: val top-1 {lines.top1(0)} -> {lines.top1(-1)} "
             f"in {len(lines)} epoch(s), best {entry.val_top1:.3f}")  # fmt: skip


class _EpochLines(list):
    """A one-trial run's epoch lines, kept; its other lines go to the terminal."""

    def __call__(self, line: str) -> None:
        if line.startswith("epoch"):
            self.append(line)
        else:
            _say(line)

    def top1(self, i: int) -> str:
        """The val top-1 of epoch line ``i`` (``... val_top1 0.2188 ...``)."""
        words = self[i].split() if self else []
        return words[words.index("val_top1") + 1] if "val_top1" in words else "?"


def demo_experiment(
    out: Path, data: Path, zoo: Path, *, quick: bool, extra: Sequence[str] = ()
) -> Experiment:
    """The demo's sweep; ``extra`` overrides come last (bench/storage.py: name, fault.keep)."""
    overrides = [
        f"data.root={data}",
        f"space.init=[none, '{ZOO_INIT}']",
        f"space.encoder=[{', '.join(ENCODERS)}]",
        f"train.zoo_dir={zoo}",
        f"storage={out / 'runs'}",
    ]
    if quick:
        overrides += [
            f"space.encoder=[{ENCODERS[0]}]",
            "repeats=3",
            "scheduler.max_epochs=1",
            "scheduler.grace_epochs=1",
            "train.samples_per_epoch=8",
        ]  # fmt: skip  (12 one-epoch trials, all completed: enough for "What mattered")
    return load_experiment(preset_path("demo"), overrides=[*overrides, *extra])


def report(run_dir: Path | Location, out: Path) -> Path | None:
    try:
        from analysis.report import build_report
    except ImportError:
        return None
    return build_report([run_dir], out=out / "report", progress=_say)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="smallest version (for tests)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    start = time.monotonic()
    _say(f"generating synthetic data in {out / 'data'}")
    micronet, superalloy = make_data(out, quick=args.quick)
    zoo = out / "zoo"
    pretrain(micronet, zoo, quick=args.quick)
    exp = demo_experiment(out, superalloy, zoo, quick=args.quick)
    shutil.rmtree(exp.run_dir, ignore_errors=True)  # the demo's own previous run
    from search.commands.sweep import format_summary
    from search.launch import run_sweep

    _say(f"sweeping {exp.name}: results in {exp.run_dir}")
    result = run_sweep(exp)
    print(format_summary(result))
    path = report(result.run_dir, out)
    if path is not None:
        _say(f"report: {path}")
    _say(f"done in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    from core.errors import UserError

    try:
        sys.exit(main())
    except UserError as err:
        print(f"microsweep demo: error: {err}", file=sys.stderr)
        sys.exit(2)
