"""The results writer keeps its record in memory and rewrites whole files, so a write that
fails while trials run (a network hiccup on S3) is retried at the next one; the last must work."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from analysis import results as R
from core.errors import StorageError
from search.results_writer import ResultsWriter
from trainables.task import get_task


def writer_for(run_dir) -> ResultsWriter:
    return ResultsWriter(
        run_dir=str(run_dir), run_info={"experiment": "x", "dataset": "d"}, factors=["decoder"],
        infeasible=[], resources=lambda config: {"cpu": 1, "gpu": 0}, min_interval_s=0.0,
        task=get_task("segmentation"),
    )  # fmt: skip


def io_error(fd: int) -> None:
    raise OSError(5, "I/O error")


def finished(name: str) -> SimpleNamespace:  # what the writer reads of Ray's Trial
    return SimpleNamespace(trial_name=name, config={"decoder": "Unet", "seed": 0}, checkpoint=None)


def test_a_failed_write_during_the_sweep_is_retried_and_the_last_one_must_succeed(
    tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    writer = writer_for(run)
    writer.setup()
    with monkeypatch.context() as mp:
        mp.setattr(os, "fsync", io_error)  # every write fails after writing its temporary file
        writer.on_trial_complete(0, [], finished("t1"))  # no exception: the sweep goes on
        assert "retried at the next write" in capsys.readouterr().err
        with pytest.raises(StorageError, match="I/O error"):
            writer.on_experiment_end([])
    assert pq.read_table(run / R.TRIALS_FILE).num_rows == 0  # the old complete file
    writer.on_experiment_end([])
    rows = pq.read_table(run / R.TRIALS_FILE).to_pylist()
    assert [(r[R.TRIAL], r[R.STATUS]) for r in rows] == [("t1", R.STOPPED)]


def test_the_history_of_a_restored_trial_fills_only_the_epochs_missing_from_the_record(tmp_path):
    """A killed driver may not have written a trial's last epochs; the first report after a
    restore carries the epochs before its checkpoint, and only missing rows are taken from it."""
    run = tmp_path / "run"
    writer = writer_for(run)
    writer.setup()
    trial = finished("t1")
    writer.on_trial_result(0, [], trial, {"epoch": 1, "val_iou": 0.5, "train_loss": 0.9})
    history = [
        {"epoch": 1, "val_iou": 0.1, "train_loss": 0.1},  # recorded already: kept as it was
        {"epoch": 2, "val_iou": 0.6, "train_loss": 0.8},
        {"epoch": 3, "val_iou": 0.7, "train_loss": 0.7},
    ]
    result = {"epoch": 4, "val_iou": 0.8, "history": json.dumps(history)}
    writer.on_trial_result(0, [], trial, result)
    writer.on_experiment_end([])
    rows = pq.read_table(run / R.EPOCHS_FILE).to_pylist()
    assert [(r[R.EPOCH], r[R.VAL_IOU]) for r in rows] == [(1, 0.5), (2, 0.6), (3, 0.7), (4, 0.8)]


def test_a_trial_recorded_as_finished_keeps_its_row_when_its_restore_fails(tmp_path):
    run = tmp_path / "run"
    first = writer_for(run)
    first.setup()
    first.on_trial_result(0, [], finished("t1"), {"epoch": 1, "val_iou": 0.5, "train_loss": 0.9})
    first.on_trial_complete(0, [], finished("t1"))
    resumed = writer_for(run)  # after a driver crash, --resume
    resumed.setup()
    resumed.on_trial_error(0, [], SimpleNamespace(**vars(finished("t1")), error_msg="boom"))
    resumed.on_experiment_end([])
    rows = pq.read_table(run / R.TRIALS_FILE).to_pylist()
    assert [(r[R.TRIAL], r[R.STATUS], r[R.ERROR]) for r in rows] == [("t1", R.STOPPED, None)]


@pytest.mark.parametrize("each_end", [True, False])
def test_ended_trials_are_written_at_once_unless_the_task_waits_for_the_throttle(
    tmp_path, each_end
):
    """A replay (never resumed) lets ended trials wait for the 5 s throttle: one rewrite of
    the whole record per ended trial cost more than the replayed trials themselves."""
    run = tmp_path / "run"
    writer = writer_for(run)
    writer.min_interval_s, writer.write_each_end = 3600.0, each_end
    writer.setup()
    writer.on_trial_complete(0, [], finished("t1"))
    assert pq.read_table(run / R.TRIALS_FILE).num_rows == (1 if each_end else 0)
    writer.on_experiment_end([])
    assert pq.read_table(run / R.TRIALS_FILE).num_rows == 1
