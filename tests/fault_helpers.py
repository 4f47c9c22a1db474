"""Node-loss scenarios for tests/test_faults.py: a local Ray cluster whose worker nodes a Tune
callback kills mid-trial, and a toy trainable that logs every start, restore and epoch.

Each scenario runs in a fresh process (``python -m tests.fault_helpers SCENARIO TMP``): it
creates its own cluster. The killing callback lives here (an importable module) and runs in the
driver's main thread, as Ray's callbacks do (docs/faults.md)."""

from __future__ import annotations

import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ray import tune

from tests.sweep_helpers import _restore, quality
from trainables.report_file import write_report


def _log(config: dict[str, Any], **entry: Any) -> None:
    """One JSON line per event in ``log_dir/<trial id>.jsonl`` (written before reporting:
    Ray may end the trial inside ``tune.report``)."""
    trial = tune.get_context().get_trial_id()
    with open(Path(config["log_dir"]) / f"{trial}.jsonl", "a") as fh:
        fh.write(json.dumps({**entry, "pid": os.getpid(), "t": time.time()}) + "\n")


def logged_trainable(config: dict[str, Any], *, data: Any = None) -> None:
    """sweep_helpers.toy_trainable with a checkpoint every ``checkpoint_every`` epochs (and at
    the last), a log of each attempt (``restored`` epoch) and epoch, and its node's id."""
    import ray

    max_epochs, every = int(config["max_epochs"]), int(config.get("checkpoint_every", 1))
    restored, last, history = _restore()
    node = ray.get_runtime_context().get_node_id()
    _log(config, event="start", restored=restored, node=node)
    if restored >= max_epochs and last:
        _report(last, history, list(history), checkpoint=True)
        return
    earlier, start, q = list(history), time.monotonic(), quality(config)
    for epoch in range(restored + 1, max_epochs + 1):
        _log(config, event="begin", epoch=epoch)
        time.sleep(float(config.get("sleep", 0.3)))
        val = q * (1 - math.exp(-epoch / 2))
        metrics = {"epoch": epoch, "train_loss": 1 - val, "val_loss": 1 - val, "val_iou": val,
                   "lr": 1e-3, "wall_s": time.monotonic() - start}  # fmt: skip
        if epoch == max_epochs:
            metrics.update({"done": True, "best_epoch": epoch, "best_val_iou": val})
        history.append(dict(metrics))
        _log(config, event="report", epoch=epoch)
        save = epoch % every == 0 or epoch == max_epochs
        ballast = int(config.get("ballast_kb", 0)) << 10
        _report({**metrics, "node_id": node}, history, earlier, checkpoint=save, ballast=ballast)
        earlier = [] if save else earlier


def _report(
    metrics: dict, history: list, earlier: list, *, checkpoint: bool, ballast: int = 0
) -> None:
    """Report; with a checkpoint (holding ``ballast`` bytes of weights) when ``checkpoint``.
    ``earlier`` (the restored history) rides along until the next checkpoint, as
    trainables.reporting sends it."""
    extra = {"history": json.dumps(earlier)} if earlier else {}
    if not checkpoint:
        tune.report({**metrics, **extra})
        return
    with tempfile.TemporaryDirectory() as folder:
        state = {"epoch": metrics["epoch"], "metrics": metrics, "history": history}
        (Path(folder) / "state.json").write_text(json.dumps(state))
        (Path(folder) / "weights.bin").write_bytes(os.urandom(ballast))
        write_report(Path(folder), metrics)
        tune.report({**metrics, **extra}, checkpoint=tune.Checkpoint.from_directory(folder))


class NodeKiller(tune.Callback):
    """Removes the node of the trial that sent the ``kill_at``-th result (counted over all
    trials, or over those of ``epoch`` only) ungracefully, then adds a replacement with the
    same CPUs. Writes ``kills.json``."""

    def __init__(
        self, cluster: Any, kill_at: list[int], log: Path, *, epoch: int | None = None
    ) -> None:
        self.cluster, self.kill_at, self.log, self.epoch = cluster, sorted(kill_at), log, epoch
        self.results, self.kills = 0, []

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks into tuner.pkl
        return {k: v for k, v in self.__dict__.items() if k != "cluster"}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        if self.epoch is not None and result.get("epoch") != self.epoch:
            return
        self.results += 1
        if not self.kill_at or self.results < self.kill_at[0] or "node_id" not in result:
            return
        self.kill_at.pop(0)
        nodes = [n for n in self.cluster.worker_nodes if n.node_id == result["node_id"]]
        if not nodes:
            return
        self.cluster.remove_node(nodes[0], allow_graceful=False)
        self.cluster.add_node(num_cpus=1)
        self.kills.append({"trial": trial.trial_id, "epoch": result.get("epoch"),
                           "result": self.results, "t": time.time()})  # fmt: skip
        self.log.write_text(json.dumps(self.kills))


def experiment(tmp: Path, name: str, scheduler: dict, decoders: list, repeats: int = 1) -> Any:
    import yaml

    from search.experiment import load_experiment

    log_dir = tmp / f"log-{name}"
    log_dir.mkdir(parents=True)
    raw = {
        "name": name, "kind": "tests.fault_helpers:logged_trainable",
        "space": {"decoder": decoders}, "repeats": repeats, "scheduler": scheduler,
        "train": {"log_dir": str(log_dir), "sleep": 0.4, "checkpoint_every": 2},
        "resources": {"cpu": 1}, "storage": str(tmp / "runs"),
    }  # fmt: skip
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_experiment(path)


def kill_schedule(seed: int, *, kills: int, low: int, high: int) -> list[int]:
    """``kills`` distinct result counts in [low, high], drawn with ``seed``."""
    return sorted(random.Random(seed).sample(range(low, high + 1), kills))


def run_scenario(scenario: str, tmp: Path, seed: int = 0) -> None:
    """A 0-CPU head (trials land only on removable workers) and two 1-CPU workers."""
    import ray
    from ray.cluster_utils import Cluster

    from search.launch import run_sweep, start_ray

    # a lost node is noticed after ~5 s, not Ray's default 15 s and more
    fast = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": fast})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    start_ray(cluster.address)
    try:
        if scenario == "fifo":  # at the first 3rd epoch (not checkpointed; the 2nd was)
            exp = experiment(tmp, "fifo", {"name": "fifo", "max_epochs": 5}, ["Unet", "FPN"], 2)
            at, epoch = [1], 3
        else:  # ASHA, 2 kills at seeded result counts among the sweep's ~15 results
            asha = {"name": "asha", "max_epochs": 4, "grace_epochs": 1, "reduction_factor": 2}
            exp = experiment(tmp, "asha", asha, ["Unet", "FPN", "Linknet"], 2)
            at, epoch = kill_schedule(seed, kills=2, low=3, high=11), None
        killer = NodeKiller(cluster, at, tmp / f"kills-{scenario}.json", epoch=epoch)
        run_sweep(exp, callbacks=[killer])
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    run_scenario(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
