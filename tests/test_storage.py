"""Run locations (core.storage): URIs kept intact, atomic writes, listing, one-line errors."""

from __future__ import annotations

import os

import pytest

from analysis import results as R
from core import storage
from core.errors import StorageError
from core.storage import Location


def test_joining_keeps_the_scheme_the_double_slash_and_the_query():
    base = Location.parse("s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http")
    run = base / "super1"
    assert str(run) == "s3://bucket/runs/super1?endpoint_override=127.0.0.1:9000&scheme=http"
    assert run.name == "super1" and run.is_uri
    assert str(Location.parse("gs://b") / "a/b.png") == "gs://b/a/b.png"
    assert str(Location.parse("file:///mnt/runs/") / "x") == "file:///mnt/runs/x"
    assert str(Location.parse("runs") / "x") == os.path.join("runs", "x")


def test_a_uri_is_never_taken_for_a_local_path():
    with pytest.raises(TypeError, match="is a URI"):
        os.fspath(Location.parse("s3://bucket/runs"))
    assert os.fspath(Location.parse("runs/x")) == "runs/x"


def test_file_uri_round_trip_listing_and_relative_paths(tmp_path):
    run = Location.parse((tmp_path / "runs").as_uri()) / "exp"
    storage.write_json(run / R.RUN_FILE, {"experiment": "exp"})
    for name in ("experiment_state-2.json", "experiment_state-10.json", "other.json"):
        (run / name).write_bytes(b"{}")
    assert (tmp_path / "runs" / "exp" / R.RUN_FILE).is_file()  # the same folder, through file://
    assert (run / R.RUN_FILE).is_file() and run.is_dir() and not (run / "nope").exists()
    assert [p.name for p in run.glob("experiment_state-*.json")] == [
        "experiment_state-10.json",
        "experiment_state-2.json",
    ]
    assert run.relative(f"{tmp_path}/runs/exp/trial_1/checkpoint_000002") == (
        "trial_1/checkpoint_000002"
    )
    assert run.relative("/elsewhere/checkpoint") == "/elsewhere/checkpoint"
    assert sorted(os.listdir(tmp_path / "runs" / "exp")) == [  # no temporary files left
        "experiment_state-10.json",
        "experiment_state-2.json",
        "other.json",
        R.RUN_FILE,
    ]


def test_an_unknown_scheme_is_one_line_naming_the_uri():
    with pytest.raises(StorageError) as err:
        (Location.parse("nosuchfs://bucket/runs") / "x").is_file()
    text = str(err.value)
    assert "\n" not in text and text.startswith("storage 'nosuchfs://bucket/runs/x': cannot open")


def test_a_file_where_the_folder_should_be_is_one_line(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create the folder") as err:
        (Location.parse(str(tmp_path / "runs")) / "exp").make_dir()
    assert "\n" not in str(err.value)


def test_files_lists_recursively_with_sizes_and_delete_removes_files_and_folders(tmp_path):
    run = Location.parse(f"file://{tmp_path}") / "run"
    storage.write_bytes(run / "t1" / "checkpoint_000000" / "state.pt", b"x" * 10)
    storage.write_bytes(run / "t1" / "checkpoint_000000" / "predictions" / "a.png", b"png")
    storage.write_bytes(run / "t1" / "result.json", b"{}")
    assert run.files() == {
        "t1/checkpoint_000000/state.pt": 10,
        "t1/checkpoint_000000/predictions/a.png": 3,
        "t1/result.json": 2,
    }
    (run / "t1" / "checkpoint_000000" / "state.pt").delete()
    (run / "t1" / "checkpoint_000000" / "predictions").delete()
    (run / "t1" / "gone").delete()  # nothing there: no error
    assert run.files() == {"t1/result.json": 2}
    run.delete()
    assert not run.exists() and (run / "x").files() == {}
