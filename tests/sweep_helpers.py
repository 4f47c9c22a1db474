"""Light trainables for the sweep driver's tests: they follow the reporting contract of
docs/contracts.md (epoch reports with checkpoints, a final ``done`` report, ``diverged``) and
sleep instead of training, so that scheduling, resume and result files are tested quickly."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ray import tune

from trainables.report_file import write_report

DECODER_QUALITY = {"Unet": 0.9, "FPN": 0.8, "Linknet": 0.7, "PSPNet": 0.6}


def quality(config: dict[str, Any]) -> float:
    """A deterministic 'final IoU' of a configuration, so rankings are known in advance."""
    q = DECODER_QUALITY.get(config.get("decoder", "Unet"), 0.5)
    q -= 0.05 * abs(float(config.get("bce_weight", 0.7)) - 0.7)
    return q - 0.01 * int(config.get("seed", 0)) - 0.1 * float(config.get("handicap", 0))


def _restore() -> tuple[int, dict[str, Any] | None, list[dict[str, Any]]]:
    """The checkpoint's epoch, the report it came with, and the reports of all epochs so far."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0, None, []
    with checkpoint.as_directory() as folder:
        state = json.loads((Path(folder) / "state.json").read_text())
    return state["epoch"], state.get("metrics"), state.get("history", [])


def _report(metrics: dict[str, Any], history: list[dict[str, Any]], earlier: list) -> None:
    """Report with a checkpoint; ``earlier`` (restored history) rides along, as in
    trainables.reporting.run_epochs."""
    with tempfile.TemporaryDirectory() as folder:
        state = {"epoch": metrics["epoch"], "metrics": metrics, "history": history}
        (Path(folder) / "state.json").write_text(json.dumps(state))
        write_report(Path(folder), metrics)  # as trainables.reporting does (docs/contracts.md)
        extra = {"history": json.dumps(earlier)} if earlier else {}
        tune.report({**metrics, **extra}, checkpoint=tune.Checkpoint.from_directory(folder))


def toy_trainable(config: dict[str, Any], *, data: Any = None) -> None:
    """val_iou rises towards quality(config); optional ``diverge_at`` epoch reports NaN."""
    max_epochs = int(config.get("max_epochs", 4))
    q = quality(config)
    start = time.monotonic()
    restored, last, history = _restore()
    earlier = list(history)
    if restored >= max_epochs and last:  # as trainables.reporting: the end, reported again
        _report(last, history, earlier)
        return
    for epoch in range(restored + 1, max_epochs + 1):
        time.sleep(float(config.get("sleep", 0.02)))
        raise_at = int(config.get("raise_at", 2))
        if config.get("raise_decoder") == config.get("decoder") and epoch == raise_at:
            raise RuntimeError(f"boom in {config['decoder']} at epoch {epoch}")
        diverges = config.get("diverge_decoder") == config.get("decoder")
        if config.get("diverge_at") == epoch or (diverges and epoch == 1):
            tune.report({"diverged": True, "epoch": epoch, "error": "non-finite loss: nan"})
            return
        val = q * (1 - math.exp(-epoch / 2))
        metrics = {
            "epoch": epoch,
            "train_loss": 1 - val,
            "val_loss": 1 - val,
            "val_iou": val,
            "lr": 1e-3,
            "wall_s": time.monotonic() - start,
        }
        if epoch == max_epochs:
            metrics.update(
                {
                    "done": True,
                    "best_epoch": epoch,
                    "best_val_iou": val,
                    "test_iou": val - 0.01,
                    "test_iou:test": val - 0.01,
                    "class_iou:test:matrix": val,
                    "per_image_iou": {"test": {"a": val, "b": val - 0.02}},
                }
            )
        history.append({k: v for k, v in metrics.items() if not isinstance(v, dict)})
        _report(metrics, history, earlier)
        earlier = []


def _rendezvous(folder: Path, wave: int, total: int, timeout: float = 60.0) -> None:
    """Wait until the whole wave of ``wave`` trials this one belongs to has started.

    Worker start-up on a loaded 2-core machine takes seconds, longer than a probe trial, so
    without this the trials Ray *may* run together do not always *happen* to overlap. Waves are
    counted by start files; a wave Ray cannot schedule at once times out and shows as less
    overlap, which the tests catch."""
    folder.mkdir(exist_ok=True)
    (folder / f"{os.getpid()}-{time.monotonic_ns()}").touch()
    target = min(total, wave * math.ceil(len(list(folder.iterdir())) / wave))
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < target and time.monotonic() < deadline:
        time.sleep(0.05)


def gpu_probe(config: dict[str, Any], *, data: Any = None) -> None:
    """Log (start, end, CUDA_VISIBLE_DEVICES, node) to ``config['log_dir']``, one file per trial.

    With ``wave: N`` and ``trials: T``, trials wait for the N of their wave to start first."""
    log = Path(config["log_dir"]) / f"{os.getpid()}-{time.monotonic_ns()}.json"
    start = time.time()
    if config.get("wave"):
        started = Path(config["log_dir"]).with_name(Path(config["log_dir"]).name + "-started")
        _rendezvous(started, int(config["wave"]), int(config["trials"]))
    epochs = int(config.get("max_epochs", 2))
    for epoch in range(1, epochs + 1):
        time.sleep(float(config.get("sleep", 0.5)))
        val = quality(config) * epoch / epochs
        # logged before reporting: Ray may end the trial inside tune.report (ASHA, done)
        entry = {"start": start, "end": time.time(), "epoch": epoch,
                 "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                 "decoder": config.get("decoder"), "seed": config.get("seed")}  # fmt: skip
        log.write_text(json.dumps(entry))
        tune.report({"epoch": epoch, "val_iou": val, "done": epoch == epochs})


def gpu_experiment(tmp: Path, name: str, gpu: float, cpu: float, decoders: list, repeats: int,
                   scheduler: dict, wave: int = 0) -> Any:  # fmt: skip
    import yaml

    from search.experiment import load_experiment

    log_dir = tmp / f"log-{name}"
    log_dir.mkdir(parents=True)
    raw = {
        "name": name, "kind": "tests.sweep_helpers:gpu_probe",
        "space": {"decoder": decoders}, "repeats": repeats, "scheduler": scheduler,
        "train": {"log_dir": str(log_dir), "sleep": 0.5, "wave": wave,
                  "trials": len(decoders) * repeats},
        "resources": {"cpu": cpu, "gpu": gpu}, "storage": str(tmp / "runs"),
    }  # fmt: skip
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_experiment(path)


def run_gpu_scenario(scenario: str, tmp: Path) -> None:
    """Run in a fresh process: Ray with fake GPUs, one or two nodes (see test_gpu_scheduling)."""
    import ray

    from search.launch import run_sweep, start_ray

    fifo = {"name": "fifo", "max_epochs": 2}
    if scenario == "one-node":
        start_ray(None, num_cpus=4, num_gpus=2)
        run_sweep(gpu_experiment(tmp, "whole", 1, 1, ["Unet", "FPN"], 2, fifo, wave=2))
        run_sweep(gpu_experiment(tmp, "half", 0.5, 0.5, ["Unet", "FPN", "PSPNet", "Linknet"], 2,
                                 fifo, wave=4))  # fmt: skip
        return
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=2, num_gpus=1)
    start_ray(cluster.address)
    asha = {"name": "asha", "max_epochs": 4, "grace_epochs": 1, "reduction_factor": 3}
    run_sweep(gpu_experiment(tmp, "nodes", 1, 1, ["Unet", "FPN", "PSPNet", "Linknet"], 2, asha))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    import sys

    run_gpu_scenario(sys.argv[1], Path(sys.argv[2]))


def slow_unwind_trainable(config: dict[str, Any], *, data: Any = None) -> None:
    """``toy_trainable`` whose end takes ``unwind_s`` of torch work, as the real trainable's does
    (deleting its scratch checkpoint, freeing the model) when Ray stops it inside
    ``tune.report``: a stopped trial's thread is then inside torch's C++ code when its actor
    ends, unless the actor waits for it (search.stopping)."""
    try:
        toy_trainable(config, data=data)
    finally:
        import torch

        deadline = time.monotonic() + float(config.get("unwind_s", 1.0))
        while time.monotonic() < deadline:
            a = torch.randn(200, 200)
            (a @ a).sum()
