"""The segmentation trainable: one trial of the paper's protocol under Ray Tune.

:func:`segmentation_trainable` is a thin adapter: Ray's config dict becomes a typed
:class:`SegmentationConfig`, the work is done by :class:`SegmentationTrial` (plain torch, no
ray), and each epoch ends in one ``tune.report`` with a checkpoint. Use it with the dataset
placed once in the object store::

    trainable = tune.with_parameters(segmentation_trainable, data=data)
    tune.Tuner(trainable, param_space={"encoder": "resnet18", "max_epochs": 5}).fit()

Reported keys follow docs/contracts.md ("What trainables report").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from core import keys as K
from core.errors import UserError
from trainables import checkpoint as ckpt
from trainables import metrics
from trainables.augment import create_augmentation
from trainables.best_store import BestStore, restore_best
from trainables.config import SegmentationConfig
from trainables.data.dataset import TRAIN, VAL, SegmentationData, Split
from trainables.loop import (
    CropDataset,
    EvalResult,
    EvalSettings,
    PaperSchedule,
    epoch_seed,
    evaluate,
    make_loader,
    set_lr,
    train_one_epoch,
)
from trainables.losses import SegmentationLoss
from trainables.reporting import Reporter, ray_report, run_epochs
from trainables.runtime import Runtime, ray_resources, resolve_runtime
from trainables.segmentation_task import (  # noqa: F401  (their old import path)
    CustomTask,
    SegmentationTask,
    write_truth_masks,
)

PREDICTIONS_DIR = K.PREDICTIONS_DIR
MODEL_FILE = ckpt.MODEL_FILE  # final checkpoint: the best-val weights (zstd-compressed safetensors)
CONFIG_FILE = ckpt.CONFIG_FILE  # final checkpoint: the trial's typed config as a dict


class SegmentationTrial:
    """Model, optimiser and schedule of one trial; :meth:`run` trains to the end.

    With a ``best_store`` (under Ray: the trial's folder on storage), a checkpoint whose best
    model is not its current one names the best weights stored once for the trial
    (:mod:`trainables.best_store`); without one they ride in ``state.pt``."""

    def __init__(
        self,
        cfg: SegmentationConfig,
        data: SegmentationData,
        runtime: Runtime,
        *,
        best_store: BestStore | None = None,
    ):
        from trainables.models import create_model

        self.cfg, self.data, self.runtime = cfg, data, runtime
        torch.manual_seed(cfg.seed)  # the random init of decoder (and encoder for `none`)
        model = create_model(
            decoder=cfg.decoder,
            encoder=cfg.encoder,
            num_classes=data.num_classes,
            init=cfg.init,
            zoo_dir=Path(cfg.zoo_dir) if cfg.zoo_dir else None,
            cache_dir=Path(cfg.cache_dir) if cfg.cache_dir else None,
            weights_dir=Path(cfg.weights_dir) if cfg.weights_dir else None,
        )
        self.model = runtime.place(model)
        self.loss_fn = SegmentationLoss(bce_weight=cfg.bce_weight)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.schedule = PaperSchedule(lr=cfg.lr, lr_final=cfg.lr_final, patience=cfg.patience)
        fp16 = runtime.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(runtime.device.type) if fp16 else None
        self.augment = create_augmentation(
            cfg.augment, crop=cfg.crop, random_resize=cfg.random_resize
        )
        self.eval_settings = EvalSettings(
            num_classes=data.num_classes,
            tile=cfg.eval_tile,
            overlap=cfg.eval_overlap,
            batch=cfg.eval_batch,
        )
        self.epoch, self.wall_s = 0, 0.0
        self.last_result: dict[str, Any] | None = None  # set by restore
        self.history: list[dict[str, Any]] = []  # every epoch's report so far; restored too
        self.best_model: dict[str, torch.Tensor] | None = None  # None: the current model
        self.best_store = best_store

    # --- state -------------------------------------------------------------------------
    def state(self) -> ckpt.TrialState:
        """The checkpoint; with a store, the best weights (if not the current ones) are
        stored there, once per best epoch, and named under ``extra["needs"]``."""
        best, extra = self.best_model, {"wall_s": self.wall_s, "config": self.cfg.to_dict()}
        if best is not None and self.best_store is not None:
            extra[ckpt.NEEDS] = self.best_store.needs(self.schedule.best_epoch, best)
            best = None
        return ckpt.TrialState(
            epoch=self.epoch,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            schedule=self.schedule.state_dict(),
            best_model=best,
            scaler=self.scaler.state_dict() if self.scaler else None,
            rng=ckpt.rng_state(),
            extra=extra,
        )

    def restore(self, state: ckpt.TrialState) -> None:
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.schedule.load_state_dict(state.schedule)
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)
        self.best_model = state.best_model
        needs = state.extra.get(ckpt.NEEDS)
        if needs:  # the best weights as of this checkpoint, stored once for the trial
            epoch = self.schedule.best_epoch
            self.best_model = restore_best(self.best_store, needs, epoch=epoch)
        self.epoch, self.wall_s = state.epoch, float(state.extra.get("wall_s", 0.0))
        self.last_result = state.extra.get("result")
        self.history = list(state.extra.get(K.HISTORY, []))
        ckpt.set_rng_state(state.rng)

    @property
    def finished(self) -> bool:
        return self.schedule.done or self.epoch >= self.cfg.max_epochs

    # --- one epoch ---------------------------------------------------------------------
    def train_epoch(self) -> float:
        seed = epoch_seed(self.cfg.seed, self.epoch + 1)
        torch.manual_seed(seed)  # dropout etc.: same stream whether resumed or not
        train = self.data.splits[TRAIN]
        dataset = CropDataset(
            train.images, train.masks, self.augment, length=self.cfg.samples_per_epoch, seed=seed
        )
        set_lr(self.optimizer, self.schedule.current_lr)
        loader = make_loader(dataset, batch_size=self.cfg.batch_size)
        return train_one_epoch(
            self.model, loader, self.loss_fn, self.optimizer, self.runtime, self.scaler
        )

    def evaluate(self, split: Split, *, keep_predictions: bool = False) -> EvalResult:
        return evaluate(
            self.model,
            split.images,
            split.masks,
            split.names,
            loss_fn=self.loss_fn,
            runtime=self.runtime,
            settings=self.eval_settings,
            keep_predictions=keep_predictions,
        )

    def step(self) -> dict[str, Any]:
        """Train and validate one epoch; raises :class:`Diverged` on a non-finite value."""
        t0 = time.perf_counter()
        lr = self.schedule.current_lr
        # the current weights are the best so far: keep them before training changes them
        keep = self.best_model is None and self.schedule.best_epoch > 0
        previous_best = _clone(self.model.state_dict()) if keep else None
        train_loss = self.train_epoch()
        t1 = time.perf_counter()
        val = self.evaluate(self.data.splits[VAL])
        t2 = time.perf_counter()
        self.epoch += 1
        if self.schedule.step(self.epoch, val.iou):
            self.best_model = None  # the current model is the best
        elif previous_best is not None:
            self.best_model = previous_best
        self.wall_s += t2 - t0
        return {
            K.EPOCH: self.epoch,
            K.TRAIN_LOSS: train_loss,
            K.VAL_LOSS: val.loss,
            K.VAL_IOU: val.iou,
            K.LR: lr,
            K.WALL_S: self.wall_s,
            "time_train_s": t1 - t0,
            "time_eval_s": t2 - t1,
        }

    # --- the end -----------------------------------------------------------------------
    def final_metrics(self, folder: Path) -> dict[str, Any]:
        """Evaluate the best-val model on every test split; write predicted masks as PNG."""
        self.model.load_state_dict(self.best_weights())
        ckpt.save_model(folder, self.best_weights(), self.cfg.to_dict())
        out: dict[str, Any] = {
            K.DONE: True,
            K.BEST_EPOCH: self.schedule.best_epoch,
            K.BEST_VAL_IOU: self.schedule.best_iou,
        }
        per_image: dict[str, dict[str, float]] = {}
        for name in self.data.test_splits:
            result = self.evaluate(self.data.splits[name], keep_predictions=True)
            out[K.test_iou_key(name)] = result.iou
            out.update(self._class_iou(name, result.counts))
            per_image[name] = result.per_image_iou
            write_predictions(folder / PREDICTIONS_DIR / name, result.predictions)
        if K.test_iou_key("test") in out:
            out[K.TEST_IOU] = out[K.test_iou_key("test")]
        out[K.PER_IMAGE_IOU] = per_image
        return out

    def best_weights(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict() if self.best_model is None else self.best_model

    def _class_iou(self, split: str, counts: metrics.IoUCounts) -> dict[str, float]:
        values = metrics.class_iou(counts)
        return {
            K.class_iou_key(split, cls): float(v)
            for cls, v in zip(self.data.classes, values, strict=True)
            if not np.isnan(v)  # class absent from prediction and truth: no figure
        }


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def write_predictions(folder: Path, masks: dict[str, np.ndarray]) -> None:
    """Index masks as 8-bit PNG, ``folder/{image}.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, mask in masks.items():
        Image.fromarray(mask).save(folder / f"{name}.png")


def run_trial(trial: SegmentationTrial, report: Reporter) -> None:
    """Epochs until the schedule or ``max_epochs`` ends the trial; one report per epoch.

    A non-finite loss or metric ends the trial with a ``diverged`` report and no ``val_iou``.
    """
    every = trial.cfg.checkpoint_every
    run_epochs(trial, report, final=trial.final_metrics, name="segmentation", every=every)


def segmentation_trainable(config: dict[str, Any], *, data: SegmentationData) -> None:
    """Ray Tune function trainable: one segmentation trial, resumed from Ray's checkpoint."""
    from ray import tune

    try:
        cfg = SegmentationConfig.from_dict(config)
    except UserError as err:
        ray_report({K.INFEASIBLE: True, K.ERROR: str(err)}, None)
        return
    cpus, use_cuda = ray_resources()
    torch.set_num_threads(cpus)
    runtime = resolve_runtime(cfg.precision, cfg.channels_last, use_cuda=use_cuda)
    try:
        trial = SegmentationTrial(cfg, data, runtime, best_store=BestStore.for_ray_trial())
    except UserError as err:
        ray_report({K.INFEASIBLE: True, K.ERROR: str(err)}, None)
        return
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trial.restore(ckpt.load(Path(folder)))
    run_trial(trial, ray_report)
