"""The keys trainables report each epoch and at the end (docs/contracts.md, "What trainables
report"), shared by the trainables that write them and the driver that reads them.

``analysis.results`` names the run folder's columns; where a column holds a reported value it
reuses the key from here, so the two cannot drift.
"""

from __future__ import annotations

# --- every epoch -------------------------------------------------------------------------------
EPOCH = "epoch"  # 1-based
TRAIN_LOSS = "train_loss"
VAL_LOSS = "val_loss"
VAL_IOU = "val_iou"  # segmentation's objective (paper IoU over whole val images)
VAL_TOP1 = "val_top1"  # pretraining's objective
VAL_TOP5 = "val_top5"
LR = "lr"
WALL_S = "wall_s"  # seconds of training + validation since the trial started (cumulative)
DATA_WAIT_S = "data_wait_s"  # pretraining: seconds this epoch's training waited for its loader
HISTORY = "history"  # after a restore: every epoch up to the checkpoint, a JSON array

# --- the end of a trial ------------------------------------------------------------------------
DONE = "done"  # the trainable's own final report (patience exhausted or max epochs)
BEST_EPOCH = "best_epoch"
BEST_VAL_IOU = "best_val_iou"
BEST_VAL_TOP1 = "best_val_top1"
TEST_IOU = "test_iou"  # the primary test split ("test")
TEST_IOU_PREFIX = "test_iou:"  # f"test_iou:{split}" for every test split, "test" included
CLASS_IOU_PREFIX = "class_iou:"  # f"class_iou:{split}:{class_name}"
PER_IMAGE_IOU = "per_image_iou"  # {split: {image: iou}}
ZOO_ENTRY = "zoo_entry"  # pretraining: the exported zoo entry's name

# --- a trial that could not train ---------------------------------------------------------------
DIVERGED = "diverged"  # True: a non-finite loss or metric ended it
INFEASIBLE = "infeasible"  # True: the configuration cannot be built
ERROR = "error"  # the one-line reason


def test_iou_key(split: str) -> str:
    return f"{TEST_IOU_PREFIX}{split}"


def class_iou_key(split: str, class_name: str) -> str:
    return f"{CLASS_IOU_PREFIX}{split}:{class_name}"


# --- run-folder names that trainables write and reports read ------------------------------------
PREDICTIONS_DIR = "predictions"  # CHECKPOINT/predictions/{split}/{image}.png (class indices)
TRUTH_DIR = "truth"  # RUN/truth/{split}/{image}.png (class indices), written once per run
