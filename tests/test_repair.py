"""search.repair against Ray's real trial state, built offline (no Ray runtime): a snapshot
naming checkpoints that Ray deleted after it was stored."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from core import storage
from core.storage import Location
from search.repair import BACKUP_SUFFIX, repair_snapshot
from trainables.report_file import write_report

pytest.importorskip("ray")

STATE = "experiment_state-2026-01-01_00-00-00.json"


def make_trial(root: str | Path, name: str):
    """A trial of experiment ``run`` under ``root`` (a folder or a URI), as Ray makes it."""
    from ray.train import CheckpointConfig
    from ray.train._internal.storage import StorageContext
    from ray.tune import PlacementGroupFactory
    from ray.tune.experiment.trial import Trial

    storage = StorageContext(storage_path=str(root), experiment_dir_name="run", trial_dir_name=name)
    keep = CheckpointConfig(
        num_to_keep=2, checkpoint_score_attribute="val_iou", checkpoint_score_order="max"
    )
    resources = PlacementGroupFactory([{"CPU": 1}])
    trial = Trial("run_trial", config={"name": name}, stub=True, storage=storage,
                  checkpoint_config=keep, placement_group_factory=resources)  # fmt: skip
    trial.create_placement_group_factory()  # as Ray does when a trial is added
    trial.custom_trial_name = name  # as microsweep's trial_name_creator does
    return trial


def checkpoint(trial, epoch: int, val_iou: float, *, report: bool = True) -> str:
    """Write the trial's next checkpoint on its storage and register it (Ray deletes evicted
    ones); returns its path on that filesystem."""
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult

    fs = trial.storage.storage_filesystem
    path = f"{trial.storage.trial_fs_path}/checkpoint_{epoch - 1:06d}"
    metrics = {"epoch": epoch, "val_iou": val_iou}
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "state.json").write_text(json.dumps({"epoch": epoch}))
        if report:
            write_report(Path(scratch), metrics)
        fs.create_dir(path)
        for file in Path(scratch).iterdir():
            with fs.open_output_stream(f"{path}/{file.name}") as out:
                out.write(file.read_bytes())
    result = {**metrics, "training_iteration": epoch + 3, "time_total_s": 1.0}  # 3 before 1
    trial.on_checkpoint(_TrainingResult(checkpoint=Checkpoint(path, filesystem=fs), metrics=result))
    return path


def snapshot(run: Location, *trials) -> bytes:
    data = {"trial_data": [list(t.get_json_state()) for t in trials], "runner_data": {}}
    (run / STATE).write_bytes(json.dumps(data).encode())
    return (run / STATE).read_bytes()


def latest(run: Location) -> dict[str, tuple]:
    """Per trial: its latest checkpoint (trial/folder) and metrics, the next-index base, and
    the stored stub flag."""
    from ray.tune.experiment.trial import Trial

    out = {}
    for trial_json, meta_json in json.loads((run / STATE).read_bytes())["trial_data"]:
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


def repair(run: Location) -> list:
    return repair_snapshot(run / STATE, run)


def test_a_trial_continues_from_its_newest_complete_checkpoint(tmp_path):
    run = Location.parse(tmp_path / "run")
    names = ("moved", "failed", "fine", "ended")
    moved, failed, fine, ended = (make_trial(tmp_path, n) for n in names)
    for epoch in (1, 2):
        for trial in (moved, failed, fine, ended):
            checkpoint(trial, epoch, 0.1 * epoch)
    failed.set_status(failed.ERROR)  # resumed too (resume_errored)
    ended.set_status(ended.TERMINATED)
    original = snapshot(run, moved, failed, fine, ended)
    for epoch in (3, 4, 5):  # after the snapshot: Ray deletes checkpoints 1 and 2
        last = checkpoint(moved, epoch, 0.1 * epoch)
    Path(last, "state.json").write_text("{")  # epoch 5's copy to storage cut short by the crash
    checkpoint(failed, 3, 0.3)
    checkpoint(failed, 4, 0.4)  # Ray deletes checkpoints 1 and 2 of this one too
    shutil.rmtree(Path(ended.storage.trial_fs_path) / "checkpoint_000001")
    fine_before = json.loads(original)["trial_data"][2]

    repairs = repair(run)

    assert [r.line() for r in repairs] == [
        "resume: trial moved: checkpoint_000001 (named by Ray's last state snapshot) is gone; "
        "it continues from checkpoint_000003 (epoch 4)",
        "resume: trial failed: checkpoint_000001 (named by Ray's last state snapshot) is gone; "
        "it continues from checkpoint_000003 (epoch 4)",
    ]
    folder, metrics, index, stub = latest(run)["moved"]
    assert (folder, stub) == ("moved/checkpoint_000003", False)
    assert index == 4  # the next checkpoint is checkpoint_000005: none is written into
    assert (metrics["epoch"], metrics["training_iteration"], metrics["val_iou"]) == (4, 7, 0.4)
    assert metrics["checkpoint_dir_name"] == "checkpoint_000003"
    assert latest(run)["failed"][:3:2] == ("failed/checkpoint_000003", 3)
    assert json.loads((run / STATE).read_bytes())["trial_data"][2] == fine_before  # untouched
    assert latest(run)["ended"][0] == "ended/checkpoint_000001"  # finished: resume skips it
    assert (run / (STATE + BACKUP_SUFFIX)).read_bytes() == original


def test_a_trial_our_record_has_as_finished_is_repaired_and_says_so(tmp_path):
    import pyarrow as pa

    from analysis import results as R

    run = Location.parse(tmp_path / "run")
    done = make_trial(tmp_path, "done")
    checkpoint(done, 1, 0.5)
    snapshot(run, done)
    checkpoint(done, 2, 0.6)
    checkpoint(done, 3, 0.7)  # its last; then the driver died before Ray's next snapshot
    storage.write_parquet(run / R.TRIALS_FILE, pa.table({R.TRIAL: ["done"]}))

    repairs = repair(run)

    assert [(r.restored, r.finished) for r in repairs] == [("checkpoint_000002", True)]
    assert repairs[0].line().endswith("the trial had finished (trials.parquet) and is not re-run")


def test_without_reports_the_newest_kept_checkpoint_is_used_else_the_trial_starts_again(
    tmp_path,
):
    run = Location.parse(tmp_path / "run")
    kept, lost = make_trial(tmp_path, "kept"), make_trial(tmp_path, "lost")
    checkpoint(kept, 1, 0.9, report=False)  # the best: kept by Ray when later ones arrive
    newest = checkpoint(kept, 2, 0.1, report=False)
    checkpoint(lost, 1, 0.5, report=False)
    snapshot(run, kept, lost)
    shutil.rmtree(newest)
    checkpoint(lost, 2, 0.6, report=False)
    checkpoint(lost, 3, 0.7, report=False)  # deletes checkpoint 1, the one named

    repairs = repair(run)

    assert [(r.trial, r.missing, r.restored) for r in repairs] == [
        ("kept", "checkpoint_000001", "checkpoint_000000"),
        ("lost", "checkpoint_000000", None),
    ]
    assert repairs[1].line().endswith("no complete checkpoint is left; the trial starts again")
    state = latest(run)
    assert state["kept"][:3:2] == ("kept/checkpoint_000000", 1)  # the snapshot's: 1 is gone
    assert state["lost"][:3] == (None, None, 2)  # after checkpoint_000002, which exists


def test_a_snapshot_whose_checkpoints_all_exist_is_left_alone(tmp_path):
    run = Location.parse(tmp_path / "run")
    trial = make_trial(tmp_path, "t")
    checkpoint(trial, 1, 0.5)
    original = snapshot(run, trial)
    assert repair(run) == []
    assert (run / STATE).read_bytes() == original
    assert not (run / (STATE + BACKUP_SUFFIX)).exists()


def test_a_checkpoint_named_in_another_trials_folder_is_not_restored(tmp_path):
    """A trial's state must never come from another trial's checkpoint, even one that exists."""
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult

    run = Location.parse(tmp_path / "run")
    own, other = make_trial(tmp_path, "own"), make_trial(tmp_path, "other")
    checkpoint(own, 1, 0.5)
    foreign = checkpoint(other, 1, 0.9)
    metrics = {"epoch": 2, "val_iou": 0.6, "training_iteration": 2}
    own.on_checkpoint(_TrainingResult(checkpoint=Checkpoint(foreign), metrics=metrics))
    snapshot(run, own, other)

    repairs = repair(run)

    assert [(r.trial, r.restored, r.epoch) for r in repairs] == [("own", "checkpoint_000000", 1)]
    assert latest(run)["own"][:3:2] == ("own/checkpoint_000000", 1)  # next: checkpoint_000002


def test_a_trial_continues_from_a_complete_checkpoint_newer_than_the_snapshot_names(tmp_path):
    """The snapshot lags (the driver died, or an outage kept it from being stored): the named
    checkpoint is there, but training after it is not redone; a newer torn copy is passed over."""
    run = Location.parse(tmp_path / "run")
    ahead, torn = make_trial(tmp_path, "ahead"), make_trial(tmp_path, "torn")
    for trial in (ahead, torn):
        checkpoint(trial, 1, 0.1)
    snapshot(run, ahead, torn)
    checkpoint(ahead, 2, 0.2)  # keeps the named checkpoint_000000 (num_to_keep 2)
    last = checkpoint(torn, 2, 0.2)
    Path(last, "state.json").write_text("{")  # its copy to storage cut short by the crash

    repairs = repair(run)

    assert [r.line() for r in repairs] == [
        "resume: trial ahead: continues from checkpoint_000001 (epoch 2), newer than "
        "checkpoint_000000 that Ray's last state snapshot names"
    ]
    folder, metrics, index, stub = latest(run)["ahead"]
    assert (folder, index, stub) == ("ahead/checkpoint_000001", 1, False)
    assert (metrics["epoch"], metrics["training_iteration"], metrics["val_iou"]) == (2, 5, 0.2)
    assert latest(run)["torn"][0] == "torn/checkpoint_000000"  # untouched


def test_a_trial_the_snapshot_names_no_checkpoint_of_continues_from_its_newest(tmp_path):
    run = Location.parse(tmp_path / "run")
    late = make_trial(tmp_path, "late")
    snapshot(run, late)  # stored before its first checkpoint
    checkpoint(late, 1, 0.1)
    checkpoint(late, 2, 0.2)

    repairs = repair(run)

    assert [r.line() for r in repairs] == [
        "resume: trial late: continues from checkpoint_000001 (epoch 2), newer than any "
        "checkpoint Ray's last state snapshot names"
    ]
    folder, metrics, index, stub = latest(run)["late"]
    assert (folder, index, stub) == ("late/checkpoint_000001", 1, False)
    assert (metrics["epoch"], metrics["training_iteration"]) == (2, 2)  # one report an epoch
