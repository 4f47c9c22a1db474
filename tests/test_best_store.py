"""The best model stored once per trial (trainables.best_store): exact resume from any
checkpoint left on storage, its deletion once no checkpoint names it, pruning, repair, S3."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from core.storage import Location
from search.pruning import prune_trial
from tests.test_s3 import BUCKET, s3_env  # noqa: F401  (the moto S3 server fixture)
from trainables import checkpoint as ckpt
from trainables.best_store import BestStore
from trainables.report_file import REPORT_FILE, parse_needs, write_report


def weights(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((4, 4), value), "b": torch.zeros(2)}


def fake_checkpoint(trial: Path, index: int, needs: dict[str, int] | None) -> Path:
    folder = trial / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / ckpt.STATE_FILE).write_bytes(b"state")
    write_report(folder, {"epoch": index + 1}, needs=needs)
    return folder


def best_files(trial: Path) -> list[str]:
    return sorted(p.name for p in (trial / "best").glob("*"))


def test_a_best_file_stays_while_a_checkpoint_on_storage_names_it(tmp_path):
    trial = tmp_path / "t"
    store = BestStore(Location.parse(trial))
    first = store.save(1, weights(1.0))
    assert list(first) == ["best/epoch_000001.safetensors"]
    fake_checkpoint(trial, 1, first)  # epoch 2's checkpoint: its best is epoch 1's
    store.save(3, weights(3.0))  # epoch 3 improved; the epoch-2 checkpoint still names epoch 1
    assert best_files(trial) == ["epoch_000001.safetensors", "epoch_000003.safetensors"]
    torch.testing.assert_close(store.load("best/epoch_000001.safetensors"), weights(1.0))
    shutil.rmtree(trial / "checkpoint_000001")  # Ray rotated it out
    (trial / "checkpoint_000009").mkdir()  # an upload a crash cut short: no report
    store.save(5, weights(5.0))
    assert best_files(trial) == ["epoch_000005.safetensors"]
    with pytest.raises(Exception, match="best weights this checkpoint names are missing"):
        store.load("best/epoch_000001.safetensors")


def test_a_store_whose_checkpoints_arrive_late_keeps_what_one_on_its_way_may_name(tmp_path):
    plain = BestStore(Location.parse(tmp_path / "plain"))
    plain.needs(1, weights(1.0)), plain.needs(3, weights(3.0))
    assert best_files(tmp_path / "plain") == ["epoch_000003.safetensors"]
    trial = tmp_path / "ddp"  # rank 0 of a data-parallel trial: checkpoints arrive late
    store = BestStore(Location.parse(trial), late_checkpoints=True)
    assert store.needs(1, weights(1.0)) == store.needs(1, weights(9.0))  # written once
    fake_checkpoint(trial, 0, None)  # epoch 1's checkpoint arrived: its best is its own model
    # epochs 3, 5 and 7 improve; the checkpoints of epochs 4, 6 and 8 naming them are on
    # their way (four epochs late), so nothing newer than epoch 1's best may go
    for epoch in (3, 5, 7):
        store.needs(epoch, weights(float(epoch)))
    assert best_files(trial) == [f"epoch_00000{e}.safetensors" for e in (1, 3, 5, 7)]
    shutil.rmtree(trial / "checkpoint_000000")  # Ray rotated it out once later ones arrived
    fake_checkpoint(trial, 5, {"best/epoch_000005.safetensors": 1})  # epoch 6's arrived
    store.needs(9, weights(9.0))  # older than epoch 6's best and named by none: they go
    assert best_files(trial) == [f"epoch_00000{e}.safetensors" for e in (5, 7, 9)]
    torch.testing.assert_close(store.load("best/epoch_000007.safetensors"), weights(7.0))


def test_pruning_keeps_the_best_file_the_final_checkpoint_names_with_last_none_with_best(
    tmp_path,
):
    for keep in ("last", "best"):
        trial = tmp_path / keep / "t"
        store = BestStore(Location.parse(trial))
        fake_checkpoint(trial, 1, store.save(1, weights(1.0)))
        fake_checkpoint(trial, 2, store.save(2, weights(2.0)))  # the final one
        assert len(best_files(trial)) == 2
        removed = prune_trial(Location.parse(tmp_path / keep), "t/checkpoint_000002", keep=keep)
        assert removed > 0
        assert best_files(trial) == (["epoch_000002.safetensors"] if keep == "last" else [])
    assert sorted(p.name for p in (tmp_path / "best" / "t").iterdir()) == ["checkpoint_000002"]


def test_repair_skips_a_checkpoint_whose_best_file_is_missing(tmp_path):
    from tests.test_repair import checkpoint, latest, make_trial, repair, snapshot

    run = Location.parse(tmp_path / "run")
    trial = make_trial(tmp_path, "moved")
    for epoch in (1, 2):
        checkpoint(trial, epoch, 0.1 * epoch)
    snapshot(run, trial)
    for epoch in (3, 4, 5):  # after the snapshot: Ray deletes checkpoints 1 and 2
        last = Path(checkpoint(trial, epoch, 0.1 * epoch))
    report = json.loads((last / REPORT_FILE).read_text())
    needs = {"best/epoch_000004.safetensors": 10}  # never arrived: the crash came first
    write_report(last, report["metrics"], needs=needs)
    assert parse_needs((last / REPORT_FILE).read_bytes()) == needs

    (fixed,) = repair(run)

    assert (fixed.restored, fixed.epoch) == ("checkpoint_000003", 4)
    assert latest(run)["moved"][0] == "moved/checkpoint_000003"


def test_best_files_on_s3_through_the_filesystem_ray_gives_a_trial(s3_env):  # noqa: F811
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=s3_env["AWS_ENDPOINT_URL"].split("//")[1],
                           scheme="http")  # fmt: skip
    trial = Location.on(fs, f"{BUCKET}/best-store/t")  # Ray's paths carry no scheme
    assert str(trial) == f"s3://{BUCKET}/best-store/t"
    store = BestStore(trial)
    needs = store.save(1, weights(1.0))
    (trial / "checkpoint_000001" / REPORT_FILE).write_bytes(
        json.dumps({"metrics": {}, "files": {}, "needs": needs}).encode()
    )
    store.save(2, weights(2.0))
    torch.testing.assert_close(store.load("best/epoch_000001.safetensors"), weights(1.0))
    (trial / "checkpoint_000001").delete()
    store.save(3, weights(3.0))
    assert sorted(trial.files()) == ["best/epoch_000003.safetensors"]


# --- exact resume of a real segmentation trial -----------------------------------------------
VAL_IOU = (0.6, 0.5, 0.7, 0.65)  # best epoch: 1, 1, 3, 3


def dropping_trial(tmp_path: Path, store: BestStore):
    """A real trial whose validation IoU follows VAL_IOU, so that the best model is older than
    the current one at epochs 2 and 4 (and its checkpoints name a best file)."""
    from tests.test_loop import CPU, _config, toy_data
    from trainables.segmentation import SegmentationTrial

    class Dropping(SegmentationTrial):
        def evaluate(self, split, *, keep_predictions=False):
            result = super().evaluate(split, keep_predictions=keep_predictions)
            if split is self.data.splits["val"]:
                return dataclasses.replace(result, iou=VAL_IOU[self.epoch])
            return result

    return Dropping(_config(max_epochs=4, samples_per_epoch=2), toy_data(), CPU, best_store=store)


def resume_stale(trial: Path, tmp_path: Path, make, run) -> tuple[Path, list]:
    """Epoch 2's checkpoint restored although epoch 3's best was stored since (a stale
    snapshot): a copy of ``trial`` without its checkpoints of epochs 3 and 4, its trial built by
    ``make(best_store)``, restored (its best must be epoch 1's file) and ``run`` to the end.
    Returns the copy's folder and its reports."""
    from safetensors.torch import load_file

    resumed_dir, again = tmp_path / "r", []
    shutil.copytree(trial, resumed_dir)
    for index in (2, 3):
        shutil.rmtree(resumed_dir / f"checkpoint_{index:06d}")
    resumed = make(BestStore(Location.parse(resumed_dir)))
    resumed.restore(ckpt.load(resumed_dir / "checkpoint_000001"))
    first_best = load_file(trial / "best" / "epoch_000001.safetensors")
    torch.testing.assert_close(resumed.best_model, first_best, rtol=0, atol=0)
    run(resumed, as_ray(resumed_dir, again))
    return resumed_dir, again


def final_model(trial: Path, checkpoint: str = "checkpoint_000003") -> dict:
    """The best weights an ended trial keeps in its final checkpoint."""
    path = trial / checkpoint / ckpt.MODEL_FILE
    return ckpt.read_model(path.read_bytes(), source=path)


def untimed(report: dict, timed: tuple[str, ...]) -> dict:
    """A final report without what depends on the clock."""
    return {k: v for k, v in report.items() if not k.startswith("time_") and k not in timed}


def as_ray(trial: Path, finals: list):
    """A reporter that stores each checkpoint in the trial folder as Ray does."""

    def report(metrics, folder):
        if folder is not None:
            shutil.copytree(folder, trial / f"checkpoint_{metrics['epoch'] - 1:06d}")
        finals.append(metrics)

    return report


@pytest.mark.slow
def test_a_trial_resumed_from_any_checkpoint_ends_with_the_same_best_model(tmp_path):
    from trainables.segmentation import run_trial

    torch.set_num_threads(1)
    trial = tmp_path / "t"
    store, reports = BestStore(Location.parse(trial)), []
    run_trial(dropping_trial(tmp_path, store), as_ray(trial, reports))
    needs = [ckpt.load(trial / f"checkpoint_{i:06d}").extra.get(ckpt.NEEDS) for i in range(4)]
    assert needs[0] is None and needs[2] is None  # the current model is the best
    assert list(needs[1]) == ["best/epoch_000001.safetensors"]
    assert list(needs[3]) == ["best/epoch_000003.safetensors"]
    assert all(ckpt.load(trial / f"checkpoint_{i:06d}").best_model is None for i in range(4))
    assert best_files(trial) == ["epoch_000001.safetensors", "epoch_000003.safetensors"]
    assert reports[-1]["best_epoch"] == 3

    resumed_dir, again = resume_stale(trial, tmp_path, lambda s: dropping_trial(tmp_path, s),
                                      run_trial)  # fmt: skip
    timed = ("history", "wall_s")
    assert untimed(again[-1], timed) == untimed(reports[-1], timed) and reports[-1]["done"]
    final, resumed_final = final_model(trial), final_model(resumed_dir)
    for key, value in final.items():
        torch.testing.assert_close(resumed_final[key], value, rtol=0, atol=0)


# --- a pretraining trial's best file on S3 ---------------------------------------------------
def test_a_pretraining_trial_stores_and_restores_its_best_on_s3(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_env,  # noqa: F811
) -> None:
    from tests.test_pretraining import _cfg, _dropping
    from trainables.classify_data import load_image_folder
    from trainables.data.synth import generate

    torch.set_num_threads(1)
    folder = generate("micronet", tmp_path / "m", n_train=4, n_val=2, size=64, n_classes=3)
    data, cfg = load_image_folder(folder), _cfg(tmp_path, max_epochs=2, patience=5)
    trial_dir = Location.parse(f"s3://{BUCKET}/pretrain-best/t")
    trial = _dropping(monkeypatch, cfg, data, BestStore(trial_dir))
    trial.step(), trial.step()
    state = trial.state()  # epoch 2: its best is epoch 1's, stored once on S3
    (name,) = state.extra[ckpt.NEEDS]
    assert state.best_model is None and sorted(trial_dir.files()) == [name]
    ckpt.save(tmp_path, state)
    restored = _dropping(monkeypatch, cfg, data, BestStore(Location.parse(str(trial_dir))))
    restored.restore(ckpt.load(tmp_path))
    for key, value in trial.best_model.items():
        assert torch.equal(restored.best_model[key], value), key
