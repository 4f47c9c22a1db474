"""The segmentation trainable under a real ``tune.Tuner`` on tiny synthetic data."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TINY = {
    "encoder": "resnet18",
    "crop": 64,
    "batch_size": 2,
    "samples_per_epoch": 4,
    "patience": 10,
    "eval_tile": 64,
    "eval_overlap": 16,
}


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    from trainables.data.dataset import load_dataset
    from trainables.data.spec import load_data_spec
    from trainables.data.synth import generate

    out = generate(
        "superalloy", tmp_path_factory.mktemp("synth") / "sa", size=64, n_train=3, n_val=2, n_test=2
    )
    return load_dataset(load_data_spec(out / "data.yaml"))


class KillOnce:
    """A tune callback that SIGKILLs the trial's worker once the checkpoint of epoch ``at``
    is registered (so the trial is killed while training epoch ``at + 1``)."""

    def __new__(cls, at: int):
        from ray import tune

        class _Kill(tune.Callback):
            def __init__(self):
                self.killed_pid = None
                self.epochs: list[int] = []
                self.pids: set[int] = set()

            def on_trial_result(self, iteration, trials, trial, result, **info):
                self.epochs.append(result["epoch"])
                self.pids.add(result["pid"])

            def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
                result = trial.last_result
                if result.get("epoch") == at and self.killed_pid is None:
                    self.killed_pid = result["pid"]
                    os.kill(result["pid"], signal.SIGKILL)

        return _Kill()


def fit(data, config, tmp_path: Path, *, callbacks=(), max_failures=0):
    from ray import tune

    from trainables.segmentation import segmentation_trainable

    tuner = tune.Tuner(
        tune.with_parameters(segmentation_trainable, data=data),
        param_space={**TINY, **config},
        run_config=tune.RunConfig(
            storage_path=str(tmp_path),
            name="t",
            callbacks=list(callbacks),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=0,
        ),
    )
    return tuner.fit()


def test_killed_trial_resumes_and_ends_with_test_figures(synth_data, ray_local, tmp_path):
    killer = KillOnce(at=2)
    results = fit(synth_data, {"max_epochs": 4}, tmp_path, callbacks=[killer], max_failures=1)
    result = results[0]
    assert killer.killed_pid is not None and len(killer.pids) == 2  # it really restarted
    assert result.error is None
    assert killer.epochs == [1, 2, 3, 4]  # no repeated, no lost epoch
    rows = result.metrics_dataframe
    for key in ("train_loss", "val_loss", "val_iou", "lr", "wall_s"):
        assert rows[key].notna().all(), key
    assert rows["wall_s"].is_monotonic_increasing  # carried over the restart
    last = result.metrics
    assert last["done"] is True and 0 <= last["test_iou"] <= 1
    assert {f"class_iou:test:{c}" for c in synth_data.classes} & set(last)
    assert set(last["per_image_iou"]["test"]) == set(synth_data.splits["test"].names)
    with result.checkpoint.as_directory() as folder:
        pngs = sorted(p.name for p in (Path(folder) / "predictions" / "test").glob("*.png"))
    assert pngs == sorted(f"{n}.png" for n in synth_data.splits["test"].names)


def test_divergence_and_infeasibility_end_trials_without_an_objective(
    synth_data, ray_local, tmp_path
):
    from ray import tune

    config = {"encoder": "vgg11", "decoder": tune.grid_search(["Unet", "DeepLabV3Plus"])}
    results = fit(synth_data, {**config, "max_epochs": 3, "lr": float("inf")}, tmp_path)
    by_decoder = {r.config["decoder"]: r for r in results}
    diverged, infeasible = by_decoder["Unet"], by_decoder["DeepLabV3Plus"]
    assert diverged.error is None  # returned, not raised: Ray does not retry it
    assert diverged.metrics["diverged"] is True and diverged.metrics["epoch"] == 1
    assert "not finite" in diverged.metrics["error"] and "val_iou" not in diverged.metrics
    assert len(diverged.metrics_dataframe) == 1
    assert infeasible.error is None and infeasible.metrics["infeasible"] is True
    assert "val_iou" not in infeasible.metrics and "vgg11" in infeasible.metrics["error"]
