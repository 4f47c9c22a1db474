"""Data-parallel pretraining trials: a Ray Tune trial that runs a Ray Train ``TorchTrainer``.

With ``resources.workers_per_trial: N > 1`` each pretraining trial is one Ray Train job of N
workers (DDP: gloo on CPUs, NCCL on GPUs), each worker with the experiment's ``resources.cpu``
/ ``resources.gpu``. Ray Train V2 (Ray's default since 2.5x) no longer accepts a trainer as
the Tuner's trainable; its documented pattern is a Tune function trial that calls
``TorchTrainer.fit()``. That trial (:func:`ddp_trainable`) reserves no CPU of its own; the
trainer's workers reserve theirs, so Tune's schedulers (ASHA) stop or continue whole jobs.

Reports and checkpoints: every worker calls ``ray.train.report`` each epoch, rank 0 with the
checkpoint; :class:`_Forward` (a Ray Train callback on the controller) hands rank 0's metrics
and the persisted checkpoint to the Tune trial through a queue, and the trial reports both to
Tune. So Tune holds the same checkpoints as for one-process trials, and a trial restarted by
Tune (a failure, a driver restart) passes its last one to every worker: resume is exact.
The zoo export runs on rank 0 only, and rank 0 writes the best weights, once per trial, into
the Tune trial's ``best/`` folder (:mod:`trainables.best_store`), which every worker reads
from on a restore.

Ray Train's own run folder is ``RUN/<trial>/train/ddp-<attempt>`` on the sweep's storage,
where every worker can reach it; Train keeps one checkpoint there (Tune copies each into the
trial's ``checkpoint_*``). It was the trial's local log folder before, which Tune copies to
storage without ever deleting: every epoch's whole state stayed there (45 of 4.6 MB for a
45-epoch trial of a tiny encoder). The ended trial's pruning removes ``train/``
(:mod:`search.pruning`).
"""

from __future__ import annotations

import atexit
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core import keys as K
from trainables import checkpoint as ckpt

POLL_S = 0.5
TRAIN_DIR = "train"  # Ray Train's run folders in the Tune trial's folder
WAIT_FOR_WORKERS_S = 7 * 24 * 3600


class WithWorkers:
    """The Tune function trainable of a data-parallel trial: ``function(config)`` with the
    job's shape (``workers``, per-worker ``worker_cpu`` / ``worker_gpu``) added to its config."""

    def __init__(self, function: Callable[[dict], None], resources: Callable, workers: int):
        self.function, self.resources, self.workers = function, resources, workers

    def __call__(self, config: dict[str, Any]) -> None:
        res = self.resources(config)
        shape = {"workers": self.workers, "worker_cpu": res["cpu"], "worker_gpu": res["gpu"]}
        self.function({**config, **shape})


def ddp_trainable(cfg: Any, config: Mapping[str, Any], data: Any) -> None:
    """Run the trial as a ``TorchTrainer`` of ``cfg.workers`` and forward its reports to Tune."""
    from ray import train, tune
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    from trainables.best_store import BestStore

    # a job whose workers wait for CPUs that other trials hold waits as long as a Tune trial
    # would, instead of failing after Ray Train's 60 s (the variable reaches the controller)
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(WAIT_FOR_WORKERS_S))
    queue: Queue = Queue(actor_options={"num_cpus": 0})
    start = tune.get_checkpoint()  # our last checkpoint of this trial: every worker loads it
    trial_dir = BestStore.for_ray_trial().trial  # the Tune trial's folder on Ray's storage
    fs, fs_path = trial_dir.resolve()
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={
            "config": dict(config),
            "data": data,
            "checkpoint": start,
            "queue": queue,
            "trial_dir": trial_dir,
        },
        scaling_config=train.ScalingConfig(
            num_workers=cfg.workers,
            use_gpu=cfg.worker_gpu > 0,
            resources_per_worker={"CPU": cfg.worker_cpu, "GPU": cfg.worker_gpu},
        ),
        run_config=train.RunConfig(
            # a fresh name per attempt: a retried trial never meets an earlier attempt's Train
            # snapshot (Train restores it, and fails when it names a deleted checkpoint)
            name=f"ddp-{uuid.uuid4().hex[:8]}",
            storage_path=f"{fs_path}/{TRAIN_DIR}",
            storage_filesystem=fs,
            failure_config=train.FailureConfig(max_failures=0),  # Tune retries the trial
            checkpoint_config=train.CheckpointConfig(num_to_keep=1),  # Tune keeps its own
            callbacks=[_Forward(queue)],
        ),
    )
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # re-raised in the trial's thread below
            outcome["error"] = err

    runner = threading.Thread(target=fit, name="torch-trainer", daemon=True)
    runner.start()
    _forward_reports(queue, runner)
    if "error" in outcome:
        raise outcome["error"]


def _forward_reports(queue: Any, runner: threading.Thread) -> None:
    """Report the job's epochs to Tune as they come. The final report waits for the job's
    end: Tune ends a trial at its final report, and a job killed then (Ray Train's own
    cleaner needs the dashboard, off here) would keep its workers' CPUs reserved."""
    import ray
    from ray import tune
    from ray.util.queue import Empty

    final = None
    while runner.is_alive() or not queue.empty():
        try:
            message, payload = queue.get(timeout=POLL_S)
        except Empty:
            continue
        if message == "placement_group":  # removed if Tune stops the trial early (ASHA)
            atexit.register(_remove_placement_group, payload)
            continue
        metrics, checkpoint = payload
        if checkpoint is not None:
            checkpoint = tune.Checkpoint(checkpoint.path, checkpoint.filesystem)
        if metrics.get(K.DONE) or metrics.get(K.DIVERGED):
            final = (metrics, checkpoint)
            continue
        tune.report(metrics, checkpoint=checkpoint)
    runner.join()
    if final is not None:
        tune.report(final[0], checkpoint=final[1])
    ray.kill(queue.actor)


def _remove_placement_group(pg: Any) -> None:
    from ray.util import remove_placement_group

    try:
        remove_placement_group(pg)
    except Exception:  # already removed by the finished job, or Ray is shutting down
        return


def _Forward(queue: Any) -> Any:
    from ray.train import UserCallback

    class Forward(UserCallback):
        """On the Train controller: rank 0's metrics and the persisted checkpoint to Tune."""

        def __init__(self, queue: Any) -> None:
            self.queue = queue

        def after_report(self, run_context: Any, metrics: list[dict], checkpoint: Any) -> None:
            self.queue.put(("report", (metrics[0], checkpoint)))

    return Forward(queue)


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: the same :class:`PretrainTrial` on its shard of every epoch."""
    import ray
    import torch
    from ray import train
    from ray.train.torch import get_device

    from trainables.best_store import BestStore
    from trainables.pretraining import PretrainConfig, PretrainTrial, run_pretraining
    from trainables.runtime import resolve_runtime

    cfg = PretrainConfig.from_dict(loop_config["config"])
    ctx = train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cpus = max(1, int(cfg.worker_cpu))
    torch.set_num_threads(cpus)
    use_cuda = cfg.worker_gpu > 0 and torch.cuda.is_available()
    runtime = resolve_runtime(cfg.precision, cfg.channels_last, use_cuda=use_cuda)
    if use_cuda:
        runtime = type(runtime)(get_device(), runtime.amp_dtype, runtime.channels_last)
    if rank == 0 and loop_config.get("queue"):  # the Tune trial removes the job's
        # reservation if Tune stops it early
        loop_config["queue"].put(("placement_group", ray.util.get_current_placement_group()))
    # rank 0's checkpoints reach the trial's folder while the workers train on
    store = BestStore(loop_config["trial_dir"], late_checkpoints=True)
    trial = PretrainTrial(cfg, loop_config["data"], runtime, rank=rank, world=world, cpus=cpus,
                          best_store=store)  # fmt: skip
    start = loop_config["checkpoint"]
    if start is not None:
        with start.as_directory() as folder:
            trial.restore(ckpt.load(Path(folder)))

    def report(metrics: dict[str, Any], folder: Path | None) -> None:
        # every rank reports (Ray Train waits for all); only rank 0's checkpoint is kept
        keep = folder is not None and rank == 0
        checkpoint = train.Checkpoint.from_directory(str(folder)) if keep else None
        train.report({k: v for k, v in metrics.items() if k != K.HISTORY or rank == 0},
                     checkpoint=checkpoint)  # fmt: skip

    run_pretraining(trial, report)
