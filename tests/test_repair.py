"""search.repair against Ray's real trial state, built offline (no Ray runtime): a snapshot
naming checkpoints that Ray deleted after it was stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis.storage import Location
from search.repair import BACKUP_SUFFIX, repair_snapshot
from trainables.report_file import write_report

pytest.importorskip("ray")

STATE = "experiment_state-2026-01-01_00-00-00.json"


def make_trial(tmp_path: Path, name: str):
    from ray.train import CheckpointConfig
    from ray.train._internal.storage import StorageContext
    from ray.tune import PlacementGroupFactory
    from ray.tune.experiment.trial import Trial

    storage = StorageContext(
        storage_path=str(tmp_path), experiment_dir_name="run", trial_dir_name=name
    )
    keep = CheckpointConfig(
        num_to_keep=2, checkpoint_score_attribute="val_iou", checkpoint_score_order="max"
    )
    resources = PlacementGroupFactory([{"CPU": 1}])
    trial = Trial("run_trial", config={"name": name}, stub=True, storage=storage,
                  checkpoint_config=keep, placement_group_factory=resources)  # fmt: skip
    trial.create_placement_group_factory()  # as Ray does when a trial is added
    trial.custom_trial_name = name  # as microsweep's trial_name_creator does
    return trial


def checkpoint(trial, epoch: int, val_iou: float, *, report: bool = True) -> Path:
    """Write the trial's next checkpoint folder and register it (Ray deletes evicted ones)."""
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult

    folder = Path(trial.storage.trial_fs_path) / f"checkpoint_{epoch - 1:06d}"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"epoch": epoch}))
    metrics = {"epoch": epoch, "val_iou": val_iou}
    if report:
        write_report(folder, metrics)
    result = {**metrics, "training_iteration": epoch, "time_total_s": 1.0}
    trial.on_checkpoint(_TrainingResult(checkpoint=Checkpoint(str(folder)), metrics=result))
    return folder


def snapshot(run: Path, *trials) -> bytes:
    data = {"trial_data": [list(t.get_json_state()) for t in trials], "runner_data": {}}
    (run / STATE).write_text(json.dumps(data))
    return (run / STATE).read_bytes()


def latest(run: Path) -> dict[str, tuple]:
    """Per trial: its latest checkpoint (trial/folder) and metrics, the next-index base, and
    the stored stub flag."""
    from ray.tune.experiment.trial import Trial

    out = {}
    for trial_json, meta_json in json.loads((run / STATE).read_text())["trial_data"]:
        trial = Trial.from_json_state(trial_json, stub=True)
        trial.restore_run_metadata(meta_json)
        result = trial.run_metadata.checkpoint_manager.latest_checkpoint_result
        path = Path(result.checkpoint.path) if result else None
        folder = f"{path.parent.name}/{path.name}" if path else None
        metrics = result.metrics if result else None
        stub = json.loads(trial_json)["stub"]
        out[trial.storage.trial_dir_name] = (
            folder, metrics, trial.storage.current_checkpoint_index, stub
        )  # fmt: skip
    return out


def test_a_trial_continues_from_its_newest_complete_checkpoint(tmp_path):
    run = tmp_path / "run"
    moved, fine, ended = (make_trial(tmp_path, n) for n in ("moved", "fine", "ended"))
    for epoch in (1, 2):
        checkpoint(moved, epoch, 0.1 * epoch)
        checkpoint(fine, epoch, 0.1 * epoch)
        checkpoint(ended, epoch, 0.1 * epoch)
    ended.set_status(ended.TERMINATED)
    original = snapshot(run, moved, fine, ended)
    for epoch in (3, 4, 5):  # after the snapshot: Ray deletes checkpoints 1 and 2
        last = checkpoint(moved, epoch, 0.1 * epoch)
    (last / "state.json").unlink()  # epoch 5's upload cut short by the crash
    shutil.rmtree(Path(ended.storage.trial_fs_path) / "checkpoint_000001")
    fine_before = json.loads(original)["trial_data"][1]

    repairs = repair_snapshot(Location.parse(run / STATE), Location.parse(run))

    assert [r.line() for r in repairs] == [
        "resume: trial moved: checkpoint_000001 (named by Ray's last state snapshot) is gone; "
        "it continues from checkpoint_000003 (epoch 4)"
    ]
    folder, metrics, index, stub = latest(run)["moved"]
    assert (folder, index, stub) == ("moved/checkpoint_000003", 3, False)
    assert (metrics["epoch"], metrics["training_iteration"], metrics["val_iou"]) == (4, 4, 0.4)
    assert metrics["checkpoint_dir_name"] == "checkpoint_000003"
    assert json.loads((run / STATE).read_text())["trial_data"][1] == fine_before  # untouched
    assert latest(run)["ended"][0] == "ended/checkpoint_000001"  # finished: resume skips it
    assert (run / (STATE + BACKUP_SUFFIX)).read_bytes() == original


def test_without_reports_the_newest_kept_checkpoint_is_used_else_the_trial_starts_again(
    tmp_path,
):
    run = tmp_path / "run"
    kept, lost = make_trial(tmp_path, "kept"), make_trial(tmp_path, "lost")
    checkpoint(kept, 1, 0.9, report=False)  # the best: kept by Ray when later ones arrive
    newest = checkpoint(kept, 2, 0.1, report=False)
    checkpoint(lost, 1, 0.5, report=False)
    snapshot(run, kept, lost)
    shutil.rmtree(newest)
    checkpoint(lost, 2, 0.6, report=False)
    checkpoint(lost, 3, 0.7, report=False)  # deletes checkpoint 1, the one named

    repairs = repair_snapshot(Location.parse(run / STATE), Location.parse(run))

    assert [(r.trial, r.missing, r.restored) for r in repairs] == [
        ("kept", "checkpoint_000001", "checkpoint_000000"),
        ("lost", "checkpoint_000000", None),
    ]
    assert repairs[1].line().endswith("no complete checkpoint is left; the trial starts again")
    state = latest(run)
    assert state["kept"][:3:2] == ("kept/checkpoint_000000", 0)
    assert state["lost"][:2] == (None, None)


def test_a_snapshot_whose_checkpoints_all_exist_is_left_alone(tmp_path):
    run = tmp_path / "run"
    trial = make_trial(tmp_path, "t")
    checkpoint(trial, 1, 0.5)
    original = snapshot(run, trial)
    assert repair_snapshot(Location.parse(run / STATE), Location.parse(run)) == []
    assert (run / STATE).read_bytes() == original
    assert not (run / (STATE + BACKUP_SUFFIX)).exists()


def test_a_checkpoint_named_in_another_trials_folder_is_not_restored(tmp_path):
    """A trial's state must never come from another trial's checkpoint, even one that exists."""
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult

    run = tmp_path / "run"
    own, other = make_trial(tmp_path, "own"), make_trial(tmp_path, "other")
    checkpoint(own, 1, 0.5)
    foreign = checkpoint(other, 1, 0.9)
    metrics = {"epoch": 2, "val_iou": 0.6, "training_iteration": 2}
    own.on_checkpoint(_TrainingResult(checkpoint=Checkpoint(str(foreign)), metrics=metrics))
    snapshot(run, own, other)

    repairs = repair_snapshot(Location.parse(run / STATE), Location.parse(run))

    assert [(r.trial, r.restored, r.epoch) for r in repairs] == [("own", "checkpoint_000000", 1)]
    assert latest(run)["own"][:3:2] == ("own/checkpoint_000000", 0)
