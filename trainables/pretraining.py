"""Encoder pretraining: classification on an image folder, the best encoder exported to the zoo.

The paper's protocol: an smp encoder + global average pooling + a linear head; SGD (momentum
0.9, weight decay 1e-4) at lr 0.1 for a global batch of 1024, scaled linearly to the actual
global batch (:func:`scaled_lr`) after a short linear warm-up, decayed by 10 % every 30 epochs
(:func:`lr_factor`); early stopping on val top-1 after ``patience`` (30) epochs without
improvement; augmentation by random resized crops, flips, rotations, photometric changes and
noise. Images are decoded in DataLoader worker processes from a file index
(:mod:`trainables.classify_data`); the config and the schedule are
:mod:`trainables.pretrain_config`. :class:`PretrainTrial` and :func:`run_pretraining` are plain
torch (no ray; DDP when a process group exists); :func:`pretraining_trainable` is the thin Ray
Tune adapter.

Example (Ray)::

    trainable = tune.with_parameters(pretraining_trainable, data=load_image_folder(root))
    tune.Tuner(trainable, param_space={"encoder": "resnet18", "zoo_dir": "zoo",
                                       "zoo_name": "r18-micro"}).fit()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from core import keys as K
from core.errors import UserError
from core.storage import Location
from trainables import checkpoint as ckpt
from trainables.best_store import BestStore, restore_best
from trainables.classify import (
    ClassificationLoss,
    Classifier,
    ImageDataset,
    classifier_parameters,
    collate_images,
    eval_transform,
    evaluate,
    loader_worker_init,
    train_augmentation,
)
from trainables.classify_data import ClassificationData
from trainables.inits import apply_init
from trainables.loop import train_one_epoch

# the config and its schedule live in pretrain_config; imported from here by older callers
from trainables.pretrain_config import (
    PretrainConfig,
    check_distinct_zoo_names,
    check_zoo_name_free,
    lr_factor,
    scaled_lr,
)
from trainables.reporting import Reporter, ray_report, run_epochs
from trainables.runtime import Runtime, ray_resources, resolve_runtime
from trainables.task import BYTES_PER_VALUE, TASKS, Progress, Task, TrialStorage
from trainables.zoo import export_encoder

__all__ = ["PretrainConfig", "PretrainTrial", "check_zoo_name_free", "lr_factor",
           "pretraining_trainable", "run_pretraining", "scaled_lr"]  # fmt: skip


class PretrainTrial:
    """One pretraining run as explicit state: step an epoch, checkpoint, restore, export.

    With a ``best_store`` (under Ray: the trial's folder on storage), a checkpoint whose best
    model is an older epoch's names the best weights stored once for the trial
    (:mod:`trainables.best_store`); without one they ride in ``state.pt``."""

    def __init__(
        self,
        cfg: PretrainConfig,
        data: ClassificationData,
        runtime: Runtime,
        *,
        rank: int = 0,
        world: int = 1,
        cpus: int = 1,
        best_store: BestStore | None = None,
    ) -> None:
        self.cfg, self.data, self.rt, self.rank, self.world = cfg, data, runtime, rank, world
        self.best_store = best_store
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.model = Classifier(cfg.encoder, len(data.classes))
        apply_init(
            self.model, cfg.init, cfg.encoder, zoo_dir=Path(cfg.zoo_dir) if cfg.zoo_dir else None
        )
        self.model = runtime.place(self.model)
        self.net = self.model if world == 1 else _ddp(self.model, runtime)
        workers = cfg.loader_workers if cfg.loader_workers >= 0 else min(cpus, 4)
        self.loader_args = {
            "batch_size": cfg.batch_size,
            "num_workers": workers,
            "collate_fn": collate_images,
        }
        if workers:  # each worker holds prefetch_factor batches: memory stays bounded
            self.loader_args.update(
                prefetch_factor=2,
                pin_memory=runtime.device.type == "cuda",
                worker_init_fn=loader_worker_init,
            )
        self.opt = torch.optim.SGD(
            self.model.parameters(),
            lr=scaled_lr(cfg, workers=world),
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, partial(lr_factor, cfg))
        self.loss_fn = ClassificationLoss()
        self.epoch, self.best_epoch, self.best = 0, 0, (-1.0, 0.0)  # (top1, top5)
        self.wall_s = 0.0
        self.best_model: dict[str, torch.Tensor] | None = None
        self.last_result: dict[str, Any] | None = None  # set by restore
        self.history: list[dict[str, Any]] = []  # every epoch's report so far; restored too
        val = ImageDataset(data.splits["val"], eval_transform(cfg.size), seed=0)
        self.val_loader = DataLoader(_shard(val, rank, world, even=False), **self.loader_args)

    @property
    def finished(self) -> bool:
        stale = self.epoch - self.best_epoch >= self.cfg.patience
        return self.epoch >= self.cfg.max_epochs or (self.epoch > 0 and stale)

    def step(self) -> dict[str, Any]:
        """Train and validate one epoch; returns the epoch's report."""
        t0, cfg = time.perf_counter(), self.cfg
        seed = int(np.random.SeedSequence([cfg.seed, self.epoch]).generate_state(1)[0])
        train = ImageDataset(
            self.data.splits["train"],
            train_augmentation(cfg.size),
            seed=seed,
            length=cfg.samples_per_epoch,
        )
        shard = _shard(train, self.rank, self.world, even=True)
        loader = DataLoader(shard, drop_last=len(shard) > cfg.batch_size, **self.loader_args)
        lr = self.opt.param_groups[0]["lr"]
        timing: dict[str, float] = {}
        train_loss = train_one_epoch(
            self.net, loader, self.loss_fn, self.opt, self.rt, timing=timing
        )
        train_loss = _mean_over_ranks(train_loss, self.world, self.rt.device)
        self.sched.step()
        val_loss, top1, top5 = evaluate(self.model, self.val_loader, self.rt)
        self.epoch += 1
        if top1 > self.best[0]:
            self.best, self.best_epoch = (top1, top5), self.epoch
            self.best_model = _clone(self.model.state_dict())
        self.wall_s += time.perf_counter() - t0
        return {
            K.EPOCH: self.epoch,
            K.TRAIN_LOSS: train_loss,
            K.VAL_LOSS: val_loss,
            K.VAL_TOP1: top1,
            K.VAL_TOP5: top5,
            K.LR: lr,
            K.DATA_WAIT_S: timing[K.DATA_WAIT_S],  # this rank's: is the loader keeping up?
            K.WALL_S: self.wall_s,  # cumulative, as segmentation reports it
        }

    def best_weights(self) -> dict[str, torch.Tensor]:
        return self.best_model if self.best_model is not None else self.model.state_dict()

    def best_encoder(self) -> dict[str, torch.Tensor]:
        weights = self.best_weights()
        return {k[len("encoder.") :]: v for k, v in weights.items() if k.startswith("encoder.")}

    def state(self) -> ckpt.TrialState:
        """The checkpoint. Its best model: none when the current model is the best; an older
        epoch's is stored once for the trial (named under ``extra["needs"]``) with a store,
        inline without one. Only rank 0 writes it: only rank 0's checkpoint is kept."""
        extra: dict[str, Any] = {"config": self.cfg.to_dict(), K.WALL_S: self.wall_s}
        best = None if self.best_epoch == self.epoch else self.best_model
        if best is not None and self.best_store is not None:
            if self.rank == 0:
                extra[ckpt.NEEDS] = self.best_store.needs(self.best_epoch, best)
            best = None
        return ckpt.TrialState(
            epoch=self.epoch,
            model=_clone(self.model.state_dict()),
            optimizer=self.opt.state_dict(),
            schedule={
                "sched": self.sched.state_dict(),
                "best_epoch": self.best_epoch,
                "best_top1": self.best[0],
                "best_top5": self.best[1],
            },
            best_model=best,
            rng=ckpt.rng_state(),
            extra=extra,
        )

    def restore(self, state: ckpt.TrialState) -> None:
        self.model.load_state_dict(state.model)
        self.opt.load_state_dict(state.optimizer)
        self.sched.load_state_dict(state.schedule["sched"])
        self.epoch, self.best_epoch = state.epoch, int(state.schedule["best_epoch"])
        self.best = (float(state.schedule["best_top1"]), float(state.schedule["best_top5"]))
        needs = state.extra.get(ckpt.NEEDS)
        if needs:  # the best weights as of this checkpoint, stored once for the trial
            self.best_model = restore_best(self.best_store, needs, epoch=self.best_epoch)
        elif state.best_model is not None:  # inline (no store, or written before there was one)
            self.best_model = state.best_model
        else:  # the checkpoint's model is the best
            self.best_model = _clone(state.model)
        self.last_result = state.extra.get("result")
        self.history = list(state.extra.get(K.HISTORY, []))
        self.wall_s = float(state.extra.get(K.WALL_S, 0.0))
        ckpt.set_rng_state(state.rng)

    def export(self) -> str:
        """Write the best encoder to the zoo; returns the entry name."""
        cfg = self.cfg
        entry = export_encoder(
            Path(cfg.zoo_dir),
            name=cfg.zoo_name,
            encoder=cfg.encoder,
            state_dict=self.best_encoder(),
            init=cfg.init,
            dataset=self.data.label,
            val_top1=self.best[0],
            val_top5=self.best[1],
            overwrite=True,
        )
        return entry.name


def _ddp(model: torch.nn.Module, runtime: Runtime) -> torch.nn.Module:
    """DistributedDataParallel over the process group Ray Train set up (gloo / NCCL)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _shard(dataset: ImageDataset, rank: int, world: int, *, even: bool) -> Subset:
    """Rank ``rank``'s samples: every ``world``-th; ``even`` drops the remainder so that every
    rank runs the same number of steps (DDP waits for all ranks at each step)."""
    end = len(dataset) - len(dataset) % world if even else len(dataset)
    return Subset(dataset, range(rank, end, world))


def _mean_over_ranks(value: float, world: int, device: torch.device) -> float:
    if world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return float(tensor) / world


def _clone(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def run_pretraining(trial: PretrainTrial, report: Reporter) -> None:
    """Epochs until early stopping or ``max_epochs``; the last report names the zoo entry."""

    def final(folder: Path) -> dict[str, Any]:
        result = {K.DONE: True, K.BEST_EPOCH: trial.best_epoch, K.BEST_VAL_TOP1: trial.best[0]}
        if trial.rank:
            return result
        if trial.cfg.zoo_name:  # one export per trial, from rank 0
            result[K.ZOO_ENTRY] = trial.export()
        else:  # no zoo entry: the best weights stay with the trial (what fault.keep keeps)
            ckpt.save_model(folder, trial.best_weights(), trial.cfg.to_dict())
        return result

    run_epochs(trial, report, final=final, name="pretrain", every=trial.cfg.checkpoint_every)


def pretraining_trainable(config: dict[str, Any], *, data: ClassificationData) -> None:
    """Ray Tune function trainable: one pretraining trial, resumed from Ray's checkpoint.

    Bad configs and unbuildable encoders report ``infeasible=True`` with the error and return.
    """
    from ray import tune

    try:
        cfg = PretrainConfig.from_dict(config)
        cpus, use_cuda = ray_resources()
        torch.set_num_threads(cpus)
        runtime = resolve_runtime(
            cfg.precision, cfg.channels_last, use_cuda=use_cuda and torch.cuda.is_available()
        )
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            check_zoo_name_free(cfg)
        if cfg.workers > 1:
            from trainables.pretrain_ddp import ddp_trainable

            return ddp_trainable(cfg, config, data)
        trial = PretrainTrial(cfg, data, runtime, cpus=cpus, best_store=BestStore.for_ray_trial())
    except UserError as err:
        ray_report({K.INFEASIBLE: True, K.ERROR: str(err)}, None)
        return
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trial.restore(ckpt.load(Path(folder)))
    run_pretraining(trial, ray_report)


class PretrainingTask(Task):
    """Encoder pretraining by classification on an image folder, exported to an encoder zoo."""

    name = "pretraining"
    metric = K.VAL_TOP1
    best_key = K.BEST_VAL_TOP1
    epoch_keys = (K.TRAIN_LOSS, K.VAL_LOSS, K.VAL_TOP1, K.VAL_TOP5, K.LR, K.DATA_WAIT_S, K.WALL_S)
    final_prefixes = (K.BEST_VAL_TOP1, K.ZOO_ENTRY)
    config_type = PretrainConfig
    multi_worker = True

    def precheck(self, points: Sequence[Mapping[str, Any]], progress: Progress | None) -> None:
        check_distinct_zoo_names(points)

    def check(self, config: Mapping[str, Any]) -> str | None:
        return None

    def parse_data(self, raw: Any, *, base_dir: Path) -> dict[str, str]:
        """``{root: FOLDER}`` or ``{manifest: FILE}``: a local path (relative to the
        experiment file) or a URI such as ``s3://bucket/micronet``."""
        if not isinstance(raw, Mapping) or len(raw) != 1 or set(raw) - {"root", "manifest"}:
            raise UserError(
                "`data` for pretraining must be {root: IMAGE_FOLDER} or {manifest: "
                f"PATH_LABEL_CSV_OR_PARQUET}}, but got {raw!r}"
            )
        ((key, value),) = raw.items()
        loc = Location.parse(str(value))
        if not loc.is_uri:
            loc = Location(str((base_dir / Path(loc.text)).resolve()))
        found = loc.is_dir() if key == "root" else loc.is_file()
        if not found:
            what = "folder" if key == "root" else "file"
            raise UserError(f"`data.{key}`: {what} '{loc}' not found")
        return {key: str(loc)}

    def load_data(self, spec: Mapping[str, str], *, train: Mapping[str, Any]) -> ClassificationData:
        """The checked file index (headers only): what Ray ships to the trials."""
        from trainables.classify_data import load_image_folder, load_manifest

        if "manifest" in spec:
            return load_manifest(spec["manifest"])
        return load_image_folder(spec["root"])

    def data_info(self, data: ClassificationData, *, spec: Any = None) -> dict[str, Any]:
        return {"dataset": data.label, "classes": list(data.classes), "test_splits": []}

    def trainable(self) -> Callable[..., None]:
        return pretraining_trainable

    def trial_storage(
        self, config: Mapping[str, Any], *, data: Any, workers: int = 1
    ) -> TrialStorage | None:
        """fp32 weights and SGD's momentum per state (none without momentum); a completed
        trial keeps ``model.safetensors.zst`` unless it exported to the zoo (outside the run
        folder); a data-parallel trial also holds Ray Train's checkpoint in ``train/`` and, on
        rank 0, the best file before the newest (:mod:`trainables.pretrain_ddp`)."""
        cfg = PretrainConfig.from_dict(config)
        whole, encoder = classifier_parameters(cfg.encoder, _class_count(data))
        best = BYTES_PER_VALUE * whole
        state = (2 if cfg.momentum > 0 else 1) * best
        extra = state + best if workers > 1 else 0
        zoo = BYTES_PER_VALUE * encoder if cfg.zoo_name else 0
        return TrialStorage(state, best, kept=0 if zoo else best, running_extra=extra, outside=zoo)

    def tuner_trainable(self, function: Any, *, resources: Callable, workers: int) -> Any:
        """Several workers: each trial a Ray Train job (see :mod:`trainables.pretrain_ddp`);
        the trial itself reserves nothing, its workers reserve ``resources`` each."""
        if workers == 1:
            return super().tuner_trainable(function, resources=resources, workers=1)
        from ray import tune

        from trainables.pretrain_ddp import WithWorkers

        # Ray refuses an empty request: the trial asks for a token of memory only
        return tune.with_resources(WithWorkers(function, resources, workers), {"memory": 1})


def _class_count(spec: Any) -> int:
    """Classes of a local image folder (its ``train/`` subfolders); 2 (the fewest allowed)
    where listing them would read a manifest or a bucket: they only size the linear head."""
    root = spec.get("root") if isinstance(spec, Mapping) else None
    if root is None or "://" in str(root) or not (Path(root) / "train").is_dir():
        return 2
    return max(2, sum(p.is_dir() for p in (Path(root) / "train").iterdir()))


TASKS.add(PretrainingTask.name, PretrainingTask())
