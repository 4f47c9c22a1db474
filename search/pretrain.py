"""One encoder-pretraining trial through the launcher, ending in a zoo entry.

Example::

    entry = run_pretrain(Path("micronet-synth"), {"encoder": "resnet18", "zoo_dir": "zoo",
                                                   "zoo_name": "r18-micro", "max_epochs": 5})
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import keys as K
from core.errors import UserError
from core.storage import is_uri
from search.one_trial import local_gpus_per_worker, one_trial_experiment, run_one_trial
from trainables.pretraining import PretrainConfig, check_zoo_name_free
from trainables.zoo import ZooEntry, get_zoo_entry

if TYPE_CHECKING:
    from search.progress import Printer


def run_pretrain(
    data_root: Path | str,
    config: dict[str, Any],
    *,
    storage: Path | None = None,
    cpus: int | None = None,
    gpus: float | None = None,
    workers: int = 1,
    printer: Printer | None = None,
) -> ZooEntry:
    """Pretrain one encoder on ``data_root`` with ``config`` (see :class:`PretrainConfig`);
    Ray's run folder goes to ``storage/pretrain`` (when None, a temporary folder, removed
    once the encoder is exported).

    ``data_root`` is an image folder or a ``.csv``/``.parquet`` manifest, local or a URI.
    ``workers`` > 1 trains data-parallel through Ray Train, ``cpus`` and ``gpus`` each
    (defaults: this machine's CPUs shared among them; one GPU each where it has enough);
    ``printer`` takes the epoch lines (default: the terminal)."""
    cfg = PretrainConfig.from_dict(config)  # fail here, in one line, before starting Ray
    if not cfg.zoo_name:
        raise UserError("pretraining needs `zoo_dir` and `zoo_name` to export the encoder")
    check_zoo_name_free(cfg)
    cpus = local_cpus_per_worker(cpus, workers)
    gpus = local_gpus_per_worker(gpus, workers)
    folder = Path(storage) if storage else Path(tempfile.mkdtemp(prefix="microsweep-pretrain-"))
    run_dir = folder / "pretrain"
    shutil.rmtree(run_dir, ignore_errors=True)  # one trial: a previous run is not resumed
    exp = one_trial_experiment(
        "pretraining",
        config,
        data=_data_block(str(data_root)),
        run_dir=run_dir,
        cpus=cpus,
        gpus=gpus,
        workers=workers,
    )
    row = run_one_trial(exp, printer=printer)  # on failure a temporary folder stays (its log)
    if storage is None:
        shutil.rmtree(folder, ignore_errors=True)
    if not row.get(K.ZOO_ENTRY):
        raise UserError("pretraining ended without exporting an encoder; see the log above")
    return get_zoo_entry(Path(cfg.zoo_dir), row[K.ZOO_ENTRY])


def local_cpus_per_worker(cpus: int | None, workers: int) -> int:
    """CPUs per worker for a run on this machine; a one-line UserError when ``workers`` x
    ``cpus`` do not fit (Ray Train would wait for them forever)."""
    import os

    have = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"`--workers` must be an integer >= 1, but got {workers!r}")
    if cpus is None:
        cpus = max(1, have // workers)
    if cpus < 1:
        raise UserError(f"`--cpus` must be >= 1, but got {cpus}")
    if cpus * workers > have:
        raise UserError(
            f"--workers {workers} x --cpus {cpus} = {cpus * workers} CPUs, but this machine "
            f"has {have}; lower --workers or --cpus"
        )
    return cpus


def _data_block(data: str) -> dict[str, str]:
    key = "manifest" if data.lower().endswith((".csv", ".parquet")) else "root"
    return {key: data if is_uri(data) else str(Path(data).resolve())}
