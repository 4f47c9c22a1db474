"""``export_model`` on a hand-made run folder: choice of trial, ensembles, refusals."""

import json

import pyarrow as pa
import pytest
from safetensors.torch import save_file

from analysis import results as R
from core import storage
from core.errors import UserError
from search.export import export_model
from tests.package_factory import CLASSES, fresh_model
from trainables.checkpoint import CONFIG_FILE, PLAIN_MODEL_FILE, save_model
from trainables.package import META_FILE, load_model

CONFIG = {"encoder": "resnet18", "decoder": "Unet", "eval_tile": 64, "eval_overlap": 16}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    storage.write_json(run / R.RUN_FILE, {
        "kind": "segmentation", "experiment": "exp", "dataset": "planted",
        "classes": [c["name"] for c in CLASSES], "dataset_sha256": "ab" * 32,
        "class_map": {"name": "superalloy", "rest": True, "classes": CLASSES},
    })  # fmt: skip
    rows = []
    for name, status, val, seed in (("a", "completed", 0.6, 0), ("b", "completed", 0.8, 1),
                                    ("c", "stopped", 0.9, 2)):  # fmt: skip
        folder = run / name / "checkpoint_000001"
        folder.mkdir(parents=True)
        if name == "a":  # as older microsweep kept it: plain safetensors
            save_file(fresh_model(seed).state_dict(), str(folder / PLAIN_MODEL_FILE))
            (folder / CONFIG_FILE).write_text(json.dumps({**CONFIG, "seed": seed}))
        elif status == "completed":
            save_model(folder, fresh_model(seed).state_dict(), {**CONFIG, "seed": seed})
        rows.append({R.TRIAL: name, R.STATUS: status, R.VAL_IOU: val, R.TEST_IOU: val - 0.1,
                     R.SEED: seed, R.CHECKPOINT: f"{name}/checkpoint_000001"})  # fmt: skip
    storage.write_parquet(run / R.TRIALS_FILE, pa.Table.from_pylist(rows))
    return run


def test_default_is_the_best_completed_trial_with_its_provenance(run, tmp_path):
    pkg = export_model(run, out=tmp_path / "m")
    meta = json.loads((pkg / META_FILE).read_text())
    assert [m["trial"] for m in meta["provenance"]["members"]] == ["b"]  # c is better but stopped
    assert meta["provenance"]["dataset_sha256"] == "ab" * 32 and meta["tile"] == 64
    assert meta["classes"][1]["colour"] == [0, 0, 255]
    assert len(load_model(pkg, device="cpu").models) == 1


def test_an_ensemble_holds_every_named_trial_best_first(run, tmp_path):
    pkg = export_model(run, ["a", "b"], out=tmp_path / "m", ensemble=True)
    meta = json.loads((pkg / META_FILE).read_text())
    assert [m["trial"] for m in meta["provenance"]["members"]] == ["b", "a"]
    assert len(load_model(pkg, device="cpu").models) == 2
    with pytest.raises(UserError, match="not empty; pass --overwrite"):
        export_model(run, ["a"], out=tmp_path / "m")


def test_fold_members_name_the_split_each_trained_on(run, tmp_path):
    import shutil

    folds = shutil.copytree(run, tmp_path / "folds")
    rows = storage.Location.parse(folds / R.TRIALS_FILE).read_table().to_pylist()
    for row, (fold, digest) in zip(rows, ((1, "f1" * 32), (2, "f2" * 32), (3, None)), strict=True):
        row.update({R.FOLD: fold, R.DATASET_SHA256: digest})
    storage.write_parquet(folds / R.TRIALS_FILE, pa.Table.from_pylist(rows))
    meta = json.loads((export_model(folds, ["a", "b"], out=tmp_path / "m", ensemble=True)
                       / META_FILE).read_text())["provenance"]  # fmt: skip
    assert [(m["fold"], m["dataset_sha256"]) for m in meta["members"]] == [
        (2, "f2" * 32),
        (1, "f1" * 32),
    ]
    assert meta["dataset_sha256"] is None  # no one split: each member names its own
    one = json.loads((export_model(folds, ["a"], out=tmp_path / "one") / META_FILE).read_text())
    assert one["provenance"]["dataset_sha256"] == "f1" * 32


def test_unknown_and_unfinished_trials_are_one_line(run, tmp_path):
    with pytest.raises(UserError, match=r"unknown trial .* 'bb'; did you mean 'b'"):
        export_model(run, ["bb"], out=tmp_path / "m")
    with pytest.raises(UserError, match=r"trial 'c' \(stopped\).*only trials that ran to"):
        export_model(run, ["c"], out=tmp_path / "m")
