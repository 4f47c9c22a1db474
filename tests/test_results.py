"""The run-folder schema module: column helpers and atomic writes."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import results as R
from core import storage
from core.errors import StorageError


def test_column_helpers_follow_the_documented_names():
    assert R.test_iou_column("different_test") == "test_iou:different_test"
    assert R.class_iou_column("test", "oxide") == "class_iou:test:oxide"
    assert R.STATUSES == ("completed", "stopped", "diverged", "error", "infeasible")
    assert R.EPOCH_COLUMNS == (
        "trial",
        "epoch",
        "train_loss",
        "val_loss",
        "val_iou",
        "lr",
        "wall_s",
    )
    assert R.PER_IMAGE_COLUMNS == ("trial", "split", "image", "iou")


def test_parquet_write_replaces_the_file_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / R.TRIALS_FILE
    storage.write_parquet(path, pa.table({R.TRIAL: ["a"]}))
    storage.write_parquet(path, pa.table({R.TRIAL: ["a", "b"]}))
    assert pq.read_table(path).column(R.TRIAL).to_pylist() == ["a", "b"]
    assert sorted(p.name for p in path.parent.iterdir()) == [R.TRIALS_FILE]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / R.RUN_FILE
    storage.write_json(path, {"experiment": "old"})

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the new bytes are written, then this fails
    with pytest.raises(StorageError, match="No space left on device"):
        storage.write_json(path, {"experiment": "new"})
    assert json.loads(path.read_text()) == {"experiment": "old"}
    assert [p.name for p in tmp_path.iterdir()] == [R.RUN_FILE]


def test_json_is_sorted_and_stable(tmp_path):
    storage.write_json(tmp_path / "x.json", {"b": 1, "a": [2, 1]})
    assert (tmp_path / "x.json").read_text() == '{\n  "a": [\n    2,\n    1\n  ],\n  "b": 1\n}\n'
    storage.write_bytes(tmp_path / "f" / "x.png", b"\x89PNG")
    assert (tmp_path / "f" / "x.png").read_bytes() == b"\x89PNG"
