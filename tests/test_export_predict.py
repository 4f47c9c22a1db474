"""A real trial through the sweep API, exported, predicted: the masks of its own test run."""

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from analysis import results as R
from search.experiment import load_experiment
from search.export import export_model
from search.launch import run_sweep
from search.predict import PredictOptions, predict_images
from trainables.package import META_FILE

REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

pytestmark = pytest.mark.slow


def tiny_run(tmp_path: Path):
    from trainables.data.synth import generate

    data = generate("superalloy", tmp_path / "synth", seed=0, n_train=2, n_val=1, n_test=2,
                    size=64)  # fmt: skip
    raw = {
        "name": "tiny",
        "kind": "segmentation",
        "data": {"root": str(data), "classes": "superalloy"},
        "space": {"encoder": "resnet18", "decoder": "Unet", "lr": 1.0e-3},
        "repeats": 1,
        "scheduler": {"name": "fifo", "max_epochs": 1},
        "train": {"crop": 64, "batch_size": 4, "samples_per_epoch": 8, "patience": 2,
                  "eval_tile": 64, "eval_overlap": 0},
        "storage": str(tmp_path / "runs"),
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return data, run_sweep(load_experiment(path))


def test_exported_trial_reproduces_its_saved_test_predictions(ray_local, tmp_path):
    data, result = tiny_run(tmp_path)
    run = Path(str(result.run_dir))
    row = result.trials[0]
    assert row[R.STATUS] == R.COMPLETED
    info = json.loads((run / R.RUN_FILE).read_text())
    assert len(info["dataset_sha256"]) == 64
    assert info["class_map"]["classes"][1]["colour"] == [0, 0, 255]

    pkg = export_model(run)  # default: the best completed trial, into RUN/model
    meta = json.loads((pkg / META_FILE).read_text())
    assert meta["provenance"]["members"][0]["trial"] == row[R.TRIAL]
    assert meta["provenance"]["dataset_sha256"] == info["dataset_sha256"]
    assert meta["tile"] == 64 and meta["classes"][0]["name"] == "matrix"

    options = PredictOptions(precision="fp32")
    pred = predict_images(pkg, [str(data / "test")], tmp_path / "pred", options=options,
                          progress=False)  # fmt: skip
    saved = run / row[R.CHECKPOINT] / R.PREDICTIONS_DIR / "test"
    assert sorted(pred.predicted) == sorted(p.stem for p in saved.glob("*.png"))
    agree = [
        (np.asarray(Image.open(tmp_path / "pred" / "masks" / f"{name}.png"))
         == np.asarray(Image.open(saved / f"{name}.png"))).mean()
        for name in pred.predicted
    ]  # fmt: skip
    assert min(agree) >= 0.999, agree
    masks = [
        np.asarray(Image.open(tmp_path / "pred" / "masks" / f"{n}.png")) for n in pred.predicted
    ]
    assert all(len(np.unique(m)) > 1 for m in masks)  # the agreement is not that of blank masks

    # the same images as Ray tasks (one per image) give the same tables
    ray_pred = predict_images(pkg, [str(data / "test")], tmp_path / "ray",
                              options=PredictOptions(precision="fp32", images_per_task=1),
                              address="local", progress=False)  # fmt: skip
    assert sorted(ray_pred.predicted) == sorted(pred.predicted)
    for name in ("phases.parquet", "particles.parquet"):
        assert pq.read_table(tmp_path / "ray" / name).equals(
            pq.read_table(tmp_path / "pred" / name)
        )
