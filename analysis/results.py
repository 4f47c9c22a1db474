"""The results schema of a sweep's run folder, and atomic Parquet/JSON writes.

A run folder ``STORAGE/NAME`` (a local folder or a URI such as ``s3://bucket/runs/NAME``) holds,
all written atomically (:mod:`analysis.storage`: temp file, fsync and rename on disks; one
upload on object stores):

``run.json``
    ``{"schema": 1, "experiment": NAME, "dataset": LABEL, "kind": "segmentation"|"pretraining",
    "factors": [space keys that varied or were set], "test_splits": [...], "classes": [...],
    "metric": "val_iou", "created": ISO time}``. Reports read factor names from here; nobody
    parses folder names.
``trials.parquet``
    One row per trial; columns below plus one column per space factor (named like the key).
``epochs.parquet``
    One row per trial-epoch.
``per_image.parquet``
    One row per trial, split and image: the IoU of the trial's best-val model on that image.

Optional, read by reports when present (proposed; see ``RUNGS``, ``SEEDS``, ``CHECKPOINT``):
``run.json["rungs"]`` the ASHA rung epochs, ``run.json["seeds"]`` the repeats' seeds,
``trials.parquet[CHECKPOINT]`` the best checkpoint folder (relative to the run folder) holding
``predictions/{split}/{image}.png`` index masks, and ``truth/{split}/{image}.png`` index masks
of the ground truth in the run folder (so reports never need the dataset readers).

IoU values are fractions in [0, 1]; reports show percent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analysis.storage import Location

SCHEMA_VERSION = 1

RUN_FILE = "run.json"
TRIALS_FILE = "trials.parquet"
EPOCHS_FILE = "epochs.parquet"

# --- trials.parquet ---------------------------------------------------------------------------
TRIAL = "trial"  # unique trial name within the run
EXPERIMENT = "experiment"  # experiment name (from the experiment file)
DATASET = "dataset"  # dataset label (data.name, default: the data root's folder name)
SEED = "seed"  # the repeat's seed
STATUS = "status"
EPOCHS = "epochs"  # epochs trained
BEST_EPOCH = "best_epoch"  # epoch of the best val IoU (1-based)
VAL_IOU = "val_iou"  # best val IoU (paper IoU, whole images)
TEST_IOU = "test_iou"  # IoU of the best-val model on the primary test split ("test")
TEST_IOU_PREFIX = "test_iou:"  # f"test_iou:{split}" for every test split, "test" included
CLASS_IOU_PREFIX = "class_iou:"  # f"class_iou:{split}:{class_name}" for val and test splits
WALL_S = "wall_s"  # wall time of the trial in seconds
CPU = "cpu"  # CPUs requested by the trial
GPU = "gpu"  # GPUs (fraction allowed) requested by the trial
NODE = "node"  # node IP the trial ran on
ERROR = "error"  # one-line reason for error / diverged / infeasible trials, else null

# Trial statuses.
COMPLETED = "completed"  # ran until patience was exhausted or max epochs
STOPPED = "stopped"  # stopped early by the scheduler (ASHA)
DIVERGED = "diverged"  # non-finite loss or metric
ERRORED = "error"  # raised an exception
INFEASIBLE = "infeasible"  # the combination cannot be built (never trained)
STATUSES = (COMPLETED, STOPPED, DIVERGED, ERRORED, INFEASIBLE)

# --- epochs.parquet ---------------------------------------------------------------------------
EPOCH = "epoch"  # 1-based
TRAIN_LOSS = "train_loss"
VAL_LOSS = "val_loss"
LR = "lr"
# plus TRIAL, VAL_IOU and WALL_S (seconds since the trial started)
EPOCH_COLUMNS = (TRIAL, EPOCH, TRAIN_LOSS, VAL_LOSS, VAL_IOU, LR, WALL_S)


def test_iou_column(split: str) -> str:
    return f"{TEST_IOU_PREFIX}{split}"


def class_iou_column(split: str, class_name: str) -> str:
    return f"{CLASS_IOU_PREFIX}{split}:{class_name}"


def write_parquet_atomic(table: pa.Table, path: str | Path | Location) -> None:
    """Write ``table`` so that readers only ever see the old or the new complete file."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes_atomic(sink.getvalue().to_pybytes(), path)


def write_json_atomic(data: Any, path: str | Path | Location) -> None:
    payload = (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()
    write_bytes_atomic(payload, path)


def write_bytes_atomic(data: bytes, path: str | Path | Location) -> None:
    """Replace ``path`` (a local path or a URI) atomically; see :mod:`analysis.storage`."""
    Location.parse(path).write_bytes(data)


# --- per_image.parquet ------------------------------------------------------------------------
PER_IMAGE_FILE = "per_image.parquet"
SPLIT = "split"
IMAGE = "image"
IOU = "iou"
PER_IMAGE_COLUMNS = (TRIAL, SPLIT, IMAGE, IOU)

# --- optional keys and files read by reports when present ---------------------------------------
RUNGS = "rungs"  # run.json: ASHA rung epochs, e.g. [1, 3, 9]
SEEDS = "seeds"  # run.json: the seeds of the repeats, e.g. [0, 1, 2]
CHECKPOINT = "checkpoint"  # trials.parquet: best checkpoint folder, relative to the run folder
PREDICTIONS_DIR = "predictions"  # CHECKPOINT/predictions/{split}/{image}.png (class indices)
TRUTH_DIR = "truth"  # RUN/truth/{split}/{image}.png (class indices), written once per run
