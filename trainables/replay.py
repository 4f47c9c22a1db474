"""The ``replay`` task: a trial that re-plays a recorded learning curve instead of training.

``microsweep simulate`` (search/simulate.py) writes the curves it draws from real run folders to
one Parquet file (``curve``, ``epoch``, ``val_iou``, ``epoch_s``, ``checkpoint_bytes``); the
driver reads it once (:meth:`ReplayTask.load_data`) and Ray hands the arrays to every trial
through the object store. A trial with ``curve: i`` reports curve ``i`` epoch by epoch, sleeping
each epoch's recorded wall time divided by ``speedup``, and writes a checkpoint of the recorded
model's size every ``checkpoint_every`` epochs, so that the real scheduler, search algorithm,
resource packing and checkpoint I/O of Ray Tune run as they would on a cluster.

Example (an experiment file; ``microsweep simulate`` builds one like it)::

    kind: replay
    data: {curves: sim/curves.parquet}
    space: {curve: [0, 1, 2, 3]}
    train: {speedup: 100, checkpoint_every: 1}
    scheduler: {name: asha, max_epochs: 18, grace_epochs: 2, reduction_factor: 3}
    resources: {cpu: 1, gpu: 1}      # fake GPUs: start_ray(num_gpus=G)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import keys as K
from core.errors import UserError
from core.storage import local_path
from trainables.task import TASKS, Task
from trainables.typed_config import TypedConfig, positive

CURVE = "curve"  # the curve index column of the curves file and the trial config key
EPOCH_S = "epoch_s"  # seconds of one epoch (not cumulative)
CHECKPOINT_BYTES = "checkpoint_bytes"  # the recorded model's size
CURVE_COLUMNS = (CURVE, K.EPOCH, K.VAL_IOU, EPOCH_S, CHECKPOINT_BYTES)
STATE_FILE = "replay.json"
WEIGHTS_FILE = "weights.bin"


@dataclass(frozen=True)
class ReplayConfig(TypedConfig):
    curve: int = 0
    seed: int = 0  # set by `repeats`; a replay does not use it
    max_epochs: int = 100
    speedup: float = 1.0  # sleep epoch time / speedup
    checkpoint_every: int = 1

    def validate(self) -> None:
        positive(self, "speedup", "checkpoint_every", "max_epochs")


@dataclass(frozen=True)
class ReplayData:
    """Every curve, flat: curve ``i`` is ``[offsets[i], offsets[i+1])`` of the arrays."""

    offsets: np.ndarray
    val_iou: np.ndarray
    epoch_s: np.ndarray
    checkpoint_bytes: np.ndarray  # one per curve
    label: str = "replay"

    def curve(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        if not 0 <= i < len(self.checkpoint_bytes):
            raise UserError(f"`curve` {i} is not in the curves file (0..{len(self) - 1})")
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.val_iou[lo:hi], self.epoch_s[lo:hi], int(self.checkpoint_bytes[i])

    def __len__(self) -> int:
        return len(self.checkpoint_bytes)


def read_curves(path: str | Path) -> ReplayData:
    """The curves file as flat arrays (rows sorted by curve, then epoch)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=list(CURVE_COLUMNS)).to_pandas()
    except (OSError, KeyError, ValueError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise UserError(f"`data.curves`: cannot read '{path}' ({first})") from None
    table = table.sort_values([CURVE, K.EPOCH])
    curves = table[CURVE].to_numpy()
    ids, starts = np.unique(curves, return_index=True)
    if len(ids) and not np.array_equal(ids, np.arange(len(ids))):
        raise UserError(f"`data.curves`: '{path}' must number its curves 0..n-1")
    return ReplayData(
        offsets=np.append(starts, len(curves)).astype(np.int64),
        val_iou=table[K.VAL_IOU].to_numpy(np.float64),
        epoch_s=table[EPOCH_S].to_numpy(np.float64),
        checkpoint_bytes=table.groupby(CURVE)[CHECKPOINT_BYTES].first().to_numpy(np.int64),
    )


def _save(folder: Path, epoch: int, size: int) -> None:
    (folder / STATE_FILE).write_text(json.dumps({K.EPOCH: epoch}))
    with open(folder / WEIGHTS_FILE, "wb") as f:  # the model's size, as Ray moves it
        f.truncate(size) if size > (1 << 20) else f.write(os.urandom(size))


def _restored_epoch() -> int:
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return int(json.loads((Path(folder) / STATE_FILE).read_text())[K.EPOCH])


def replay_trainable(config: dict[str, Any], *, data: ReplayData) -> None:
    """Ray Tune function trainable: curve ``config["curve"]``, one report per epoch.

    The last epoch's report carries ``done`` and the best epoch (the contract of
    docs/contracts.md), so a curve that ends before ``max_epochs`` (patience) completes.
    """
    from ray import tune

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # a line per checkpoint otherwise
    cfg = ReplayConfig.from_dict(config)
    values, seconds, size = data.curve(cfg.curve)
    last, start = min(len(values), cfg.max_epochs), _restored_epoch()
    wall = float(seconds[:start].sum())
    for epoch in range(start + 1, last + 1):
        time.sleep(seconds[epoch - 1] / cfg.speedup)
        wall += float(seconds[epoch - 1])
        result: dict[str, Any] = {K.EPOCH: epoch, K.VAL_IOU: float(values[epoch - 1])}
        result[K.WALL_S] = wall  # the recorded time, not the sped-up sleep
        if epoch == last:
            best = int(np.argmax(values[:last]))
            result.update({K.DONE: True, K.BEST_EPOCH: best + 1})
            result[K.BEST_VAL_IOU] = float(values[best])
        if epoch % cfg.checkpoint_every and epoch != last:
            tune.report(result)
            continue
        folder = Path(tempfile.mkdtemp(prefix="microsweep-replay-"))
        try:
            _save(folder, epoch, size)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(folder)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class ReplayTask(Task):
    """Recorded learning curves re-played under Ray Tune (``microsweep simulate``)."""

    name = "replay"
    metric = K.VAL_IOU
    best_key = K.BEST_VAL_IOU
    epoch_keys = (K.VAL_IOU, K.WALL_S)
    final_prefixes = (K.BEST_VAL_IOU,)
    config_type = ReplayConfig
    reuse_actors = True  # a replay's work is tiny: a worker process per trial would dominate
    write_each_end = False  # never resumed: rows at the writer's throttle, and at the end

    def parse_data(self, raw: Any, *, base_dir: Path) -> Path:
        if not isinstance(raw, Mapping) or set(raw) != {"curves"}:
            raise UserError(f"`data` for replay must be {{curves: FILE.parquet}}, but got {raw!r}")
        path = local_path(str(raw["curves"]), base_dir)
        if not path.is_file():
            raise UserError(f"`data.curves`: file '{path}' not found")
        return path

    def load_data(self, spec: Path, *, train: Mapping[str, Any]) -> ReplayData:
        return read_curves(spec)

    def data_info(self, data: ReplayData, *, spec: Any = None) -> dict[str, Any]:
        return {"dataset": data.label, "classes": [], "test_splits": []}

    def trainable(self) -> Callable[..., None]:
        return replay_trainable


TASKS.add(ReplayTask.name, ReplayTask())
