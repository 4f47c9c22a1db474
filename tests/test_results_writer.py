"""The results writer keeps its record in memory and rewrites whole files, so a write that
fails while trials run (a network hiccup on S3) is retried at the next one; the last must work."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from analysis import results as R
from analysis.errors import StorageError
from search.results_writer import ResultsWriter


def writer_for(run_dir) -> ResultsWriter:
    return ResultsWriter(
        run_dir=str(run_dir), run_info={"experiment": "x", "dataset": "d"}, factors=["decoder"],
        infeasible=[], resources=lambda config: {"cpu": 1, "gpu": 0}, min_interval_s=0.0,
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
