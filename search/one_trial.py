"""``microsweep train`` and ``microsweep pretrain`` as one-trial experiments: the same launcher,
checks, run folder (run.json, trials/epochs.parquet, checkpoints) and progress lines as a sweep.

Example::

    exp = one_trial_experiment("segmentation", {"encoder": "resnet18", "max_epochs": 5},
                               data={"root": "Super1", "classes": "superalloy"},
                               run_dir=Path("runs/train"), cpus=2)
    row = run_one_trial(exp)          # the trial's row of trials.parquet
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis import results as R
from core.errors import UserError
from search.experiment import Experiment, parse_experiment

if TYPE_CHECKING:  # search.progress imports ray
    from search.progress import Printer


def one_trial_experiment(
    kind: str,
    config: Mapping[str, Any],
    *,
    data: Mapping[str, Any],
    run_dir: Path,
    cpus: int,
    gpus: float = 0.0,
    workers: int = 1,
    base_dir: Path = Path("."),
) -> Experiment:
    """The experiment of one trial with ``config``; ``run_dir`` is its run folder; ``cpus``
    and ``gpus`` per worker, ``workers`` data-parallel workers (tasks that support it:
    pretraining)."""
    space = {k: v for k, v in config.items() if k not in ("max_epochs", "seed")}
    scheduler = {"name": "fifo"}
    if "max_epochs" in config:
        scheduler["max_epochs"] = config["max_epochs"]
    run_dir = Path(run_dir).resolve()
    raw = {
        "name": run_dir.name,
        "kind": kind,
        "data": dict(data),
        "space": space,
        "search": {"seed": int(config.get("seed", 0))},
        "scheduler": scheduler,
        "resources": {"cpu": cpus, "gpu": gpus, "workers_per_trial": workers},
        "fault": {"checkpoints_to_keep": int(config.get("checkpoints_to_keep", 2))},
        "storage": str(run_dir.parent),
    }
    return parse_experiment(raw, base_dir=base_dir)


def local_gpus_per_worker(gpus: float | None, workers: int = 1) -> float:
    """GPUs per worker for a run on this machine: ``gpus``, or by default one per worker when
    the machine has a CUDA GPU for each (else 0: CPUs). A one-line UserError when they do not
    fit (Ray would wait for them forever) or when data-parallel workers would share a GPU."""
    import torch

    have = torch.cuda.device_count()
    if gpus is None:
        return 1.0 if have >= workers else 0.0
    if isinstance(gpus, bool) or not isinstance(gpus, int | float) or gpus < 0:
        raise UserError(f"`--gpus` must be a number >= 0, but got {gpus!r}")
    if workers > 1 and gpus not in (0, 1):
        raise UserError(f"`--gpus` must be 0 or 1 with --workers {workers} (each data-parallel "
                        f"worker drives one GPU), but got {gpus:g}")  # fmt: skip
    if gpus * workers > have:
        raise UserError(f"--workers {workers} x --gpus {gpus:g} = {gpus * workers:g} GPU(s), but "
                        f"this machine has {have}; use --gpus 0 to train on CPUs")  # fmt: skip
    return float(gpus)


def run_one_trial(
    exp: Experiment, *, address: str | None = None, printer: Printer | None = None
) -> dict[str, Any]:
    """Run it through the launcher; the trial's row, or one line saying why it did not train.
    ``printer`` takes the epoch lines (default: the terminal)."""
    from search.launch import NothingTrained, run_sweep
    from search.progress import stderr_line

    try:
        lines = stderr_line if printer is None else printer  # an empty collector is falsy
        result = run_sweep(exp, address=address, printer=lines)
    except NothingTrained:
        rows = _rows(exp)
        row = rows[0] if rows else {}
        status, error = row.get(R.STATUS), row.get(R.ERROR)
        if status == R.DIVERGED:
            raise UserError(f"the trial diverged: {error}; try a lower lr") from None
        raise UserError(f"the trial could not train ({status}): {error}") from None
    return result.trials[0]


def _rows(exp: Experiment) -> list[dict[str, Any]]:
    path = exp.run_dir / R.TRIALS_FILE
    return path.read_table().to_pylist() if path.is_file() else []


def final_checkpoint(exp: Experiment, row: Mapping[str, Any]) -> str | None:
    """Where the trial's final checkpoint is (a path or URI), or None."""
    relative = row.get(R.CHECKPOINT)
    return str(exp.run_dir / relative) if relative else None
