"""One encoder-pretraining trial under a local Ray Tuner, ending in a zoo entry.

Example::

    entry = run_pretrain(Path("micronet-synth"), {"encoder": "resnet18", "zoo_dir": "zoo",
                                                   "zoo_name": "r18-micro", "max_epochs": 5})
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import UserError
from trainables.classify_data import load_image_folder
from trainables.pretraining import PretrainConfig, check_zoo_name_free, pretraining_trainable
from trainables.zoo import ZooEntry, get_zoo_entry

Printer = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _progress_callback(printer: Printer) -> Any:
    from ray import tune

    class EpochPrinter(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):  # type: ignore[override]
            if "val_top1" in result:
                printer(
                    f"epoch {result['epoch']}: train_loss {result['train_loss']:.4f}  "
                    f"val_loss {result['val_loss']:.4f}  val_top1 {result['val_top1']:.3f}  "
                    f"val_top5 {result['val_top5']:.3f}  lr {result['lr']:.3g}"
                )

    return EpochPrinter()


def _init_ray(cpus: int | None) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=cpus or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=True,
            logging_level="warning",
        )


def run_pretrain(
    data_root: Path,
    config: dict[str, Any],
    *,
    storage: Path | None = None,
    cpus: int | None = None,
    printer: Printer = _stderr,
) -> ZooEntry:
    """Pretrain one encoder on ``data_root`` with ``config`` (see :class:`PretrainConfig`)."""
    cfg = PretrainConfig.from_dict(config)  # fail here, in one line, before starting Ray
    if not cfg.zoo_name:
        raise UserError("pretraining needs `zoo_dir` and `zoo_name` to export the encoder")
    check_zoo_name_free(cfg)
    data = load_image_folder(data_root)
    printer(
        f"{data.label}: {len(data.classes)} classes, "
        f"{len(data.splits['train'].images)} train / {len(data.splits['val'].images)} val"
    )
    from ray import tune

    _init_ray(cpus)
    folder = Path(storage) if storage else Path(tempfile.mkdtemp(prefix="microsweep-pretrain-"))
    try:
        trainable = tune.with_resources(
            tune.with_parameters(pretraining_trainable, data=data), {"cpu": cpus or os.cpu_count()}
        )
        tuner = tune.Tuner(
            trainable,
            param_space=dict(config),
            run_config=tune.RunConfig(
                name="pretrain", storage_path=str(folder.resolve()), verbose=0,
                callbacks=[_progress_callback(printer)],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            ),
        )  # fmt: skip
        result = tuner.fit()[0]
    finally:
        if storage is None:
            shutil.rmtree(folder, ignore_errors=True)
    return _entry_from(result.metrics or {}, cfg)


def _entry_from(metrics: dict[str, Any], cfg: PretrainConfig) -> ZooEntry:
    if metrics.get("infeasible"):
        raise UserError(f"pretraining could not start: {metrics.get('error')}")
    if metrics.get("diverged"):
        raise UserError(
            f"pretraining diverged at epoch {metrics.get('epoch')}: {metrics.get('error')}; "
            "try a lower lr"
        )
    if not metrics.get("zoo_entry"):
        raise UserError("pretraining ended without exporting an encoder; see Ray's log above")
    return get_zoo_entry(Path(cfg.zoo_dir), metrics["zoo_entry"])
