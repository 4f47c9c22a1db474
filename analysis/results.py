"""The results schema of a sweep's run folder, and atomic Parquet/JSON writes.

A run folder ``STORAGE/NAME`` (a local folder or a URI such as ``s3://bucket/runs/NAME``) holds,
all written atomically (:mod:`core.storage`: temp file, fsync and rename on disks; one
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
``recommendation.json`` (optional)
    The ranked candidates of ``microsweep recommend`` (:mod:`analysis.recommend`); trials of
    its confirm stage carry ``STAGE = CONFIRM`` in ``trials.parquet``.

Optional, read by reports when present (proposed; see ``RUNGS``, ``SEEDS``, ``CHECKPOINT``):
``run.json["rungs"]`` the ASHA rung epochs, ``run.json["seeds"]`` the repeats' seeds,
``trials.parquet[CHECKPOINT]`` the best checkpoint folder (relative to the run folder) holding
``predictions/{split}/{image}.png`` index masks, and ``truth/{split}/{image}.png`` index masks
of the ground truth in the run folder (so reports never need the dataset readers).

IoU values are fractions in [0, 1]; reports show percent.
"""

from __future__ import annotations

from core import keys as K

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
BEST_EPOCH = K.BEST_EPOCH  # epoch of the best val IoU (1-based)
VAL_IOU = K.VAL_IOU  # best val IoU (paper IoU, whole images)
TEST_IOU = K.TEST_IOU  # IoU of the best-val model on the primary test split ("test")
TEST_IOU_PREFIX = K.TEST_IOU_PREFIX  # f"test_iou:{split}" for every test split, "test" included
CLASS_IOU_PREFIX = K.CLASS_IOU_PREFIX  # f"class_iou:{split}:{class_name}" for val and test splits
WALL_S = K.WALL_S  # wall time of the trial in seconds
CPU = "cpu"  # CPUs requested by the trial
GPU = "gpu"  # GPUs (fraction allowed) requested by the trial
NODE = "node"  # node IP the trial ran on
ERROR = K.ERROR  # one-line reason for error / diverged / infeasible trials, else null
STAGE = "stage"  # optional: which stage ran the trial (a missing column means all SEARCH)
FOLD = "fold"  # optional: the k-fold split a confirm trial trained on (recommend --folds)
DATASET_SHA256 = "dataset_sha256"  # optional: the hash of the split the trial trained on

# Trial stages (``microsweep recommend``): the sweep, then the top configurations again.
SEARCH = "search"  # the experiment's sweep (ASHA may stop trials early)
CONFIRM = "confirm"  # a candidate configuration retrained from scratch with a new seed
STAGES = (SEARCH, CONFIRM)

# Trial statuses.
COMPLETED = "completed"  # ran until patience was exhausted or max epochs
STOPPED = "stopped"  # stopped early by the scheduler (ASHA)
DIVERGED = K.DIVERGED  # non-finite loss or metric
ERRORED = "error"  # raised an exception
INFEASIBLE = K.INFEASIBLE  # the combination cannot be built (never trained)
STATUSES = (COMPLETED, STOPPED, DIVERGED, ERRORED, INFEASIBLE)

# --- epochs.parquet ---------------------------------------------------------------------------
EPOCH = K.EPOCH  # 1-based
TRAIN_LOSS = K.TRAIN_LOSS
VAL_LOSS = K.VAL_LOSS
LR = K.LR
# plus TRIAL, VAL_IOU and WALL_S (seconds since the trial started); STAGE (optional: files
# written before it had one are the search's, or their trial's in trials.parquet)
EPOCH_COLUMNS = (TRIAL, EPOCH, TRAIN_LOSS, VAL_LOSS, VAL_IOU, LR, WALL_S)


test_iou_column = K.test_iou_key


class_iou_column = K.class_iou_key


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
PREDICTIONS_DIR = K.PREDICTIONS_DIR  # CHECKPOINT/predictions/{split}/{image}.png (class indices)
TRUTH_DIR = K.TRUTH_DIR  # RUN/truth/{split}/{image}.png (class indices), written once per run
RECOMMENDATION_FILE = "recommendation.json"  # RUN/recommendation.json (analysis.recommend)
LOGS_DIR = "logs"  # RUN/logs/ray-{UTC time}.log: Ray's own output of each sweep session
