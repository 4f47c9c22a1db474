"""Real Ray sweeps on one shared local runtime: trial sets, statuses, ASHA, Optuna, trainables."""

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from analysis import results as R
from search.experiment import load_experiment
from search.launch import run_sweep

# Ray's workers must import tests.sweep_helpers: they inherit this before the runtime starts.
REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

pytestmark = pytest.mark.slow

TOY = "tests.sweep_helpers:toy_trainable"


def experiment(tmp_path: Path, **raw):
    base = {
        "name": "toy",
        "kind": TOY,
        "space": {"decoder": ["Unet", "FPN", "Linknet", "DeepLabV3Plus"], "encoder": "vgg11_bn"},
        "repeats": 2,
        "scheduler": {"name": "asha", "max_epochs": 9, "grace_epochs": 1, "reduction_factor": 3},
        "train": {"sleep": 0.02, "diverge_decoder": "Linknet"},
        "storage": str(tmp_path / "runs"),
    }
    base.update(raw)
    path = tmp_path / f"{base['name']}.yaml"
    path.write_text(yaml.safe_dump(base))
    return load_experiment(path)


def table(run_dir, name: str) -> list[dict]:
    return pq.read_table(Path(run_dir) / name).to_pylist()


def test_grid_sweep_with_asha_records_every_trial(ray_local, tmp_path):
    exp = experiment(tmp_path)
    result = run_sweep(exp)
    rows = {(r["decoder"], r[R.SEED]): r for r in table(result.run_dir, R.TRIALS_FILE)}
    expected = {(d, s) for d in ("Unet", "FPN", "Linknet", "DeepLabV3Plus") for s in (0, 1)}
    assert set(rows) == expected and len(result.trials) == 8
    # vgg11_bn cannot be dilated: listed as infeasible, never trained
    for seed in (0, 1):
        row = rows[("DeepLabV3Plus", seed)]
        assert row[R.STATUS] == R.INFEASIBLE and row[R.EPOCHS] == 0 and "dilated" in row[R.ERROR]
        assert rows[("Linknet", seed)][R.STATUS] == R.DIVERGED
        assert rows[("Linknet", seed)][R.VAL_IOU] is None  # never an objective
        assert rows[("Linknet", seed)][R.EPOCHS] == 1
    assert rows[("Unet", 0)][R.STATUS] == R.COMPLETED
    assert rows[("Unet", 0)][R.EPOCHS] == 9 and rows[("Unet", 0)][R.TEST_IOU] is not None
    stopped = [r for r in rows.values() if r[R.STATUS] == R.STOPPED]
    assert stopped, "ASHA stopped no trial"
    assert all(r[R.EPOCHS] in (1, 3) for r in stopped)  # at rung boundaries
    assert result.best[R.TRIAL] == rows[("Unet", 0)][R.TRIAL]
    assert (result.run_dir / result.best[R.CHECKPOINT]).is_dir()
    epochs = table(result.run_dir, R.EPOCHS_FILE)
    trained = [r for r in rows.values() if r[R.STATUS] not in (R.INFEASIBLE, R.DIVERGED)]
    assert len(epochs) == sum(r[R.EPOCHS] for r in trained)
    run = json.loads((result.run_dir / R.RUN_FILE).read_bytes())
    assert run["rungs"] == [1, 3] and run["seeds"] == [0, 1] and run["metric"] == "val_iou"
    images = table(result.run_dir, R.PER_IMAGE_FILE)
    assert {r[R.TRIAL] for r in images} == {
        r[R.TRIAL] for r in rows.values() if r[R.STATUS] == R.COMPLETED
    }


def test_a_trial_that_raises_is_recorded_as_error_with_its_reason(ray_local, tmp_path):
    exp = experiment(
        tmp_path,
        name="raises",
        space={"decoder": ["Unet", "FPN"], "encoder": "resnet18"},
        repeats=1,
        scheduler={"name": "fifo", "max_epochs": 3},
        train={"sleep": 0.01, "raise_decoder": "FPN"},
        fault={"max_failures": 0},
    )
    rows = {r["decoder"]: r for r in run_sweep(exp).trials}
    assert rows["Unet"][R.STATUS] == R.COMPLETED
    assert rows["FPN"][R.STATUS] == R.ERRORED
    assert "boom in FPN at epoch 2" in rows["FPN"][R.ERROR]


def sampled(tmp_path: Path, name: str) -> list[tuple]:
    exp = experiment(
        tmp_path,
        name=name,
        space={"decoder": ["Unet", "FPN"], "bce_weight": {"uniform": [0.3, 0.9]}},
        repeats=1,
        search={"algorithm": "optuna", "num_samples": 4, "seed": 3, "max_concurrent": 1},
        scheduler={"name": "asha", "max_epochs": 3, "grace_epochs": 1, "reduction_factor": 2},
        train={"sleep": 0.01},
    )
    result = run_sweep(exp)
    assert {r[R.STATUS] for r in result.trials} <= {R.COMPLETED, R.STOPPED}
    return sorted((r["decoder"], round(r["bce_weight"], 12), r[R.EPOCHS]) for r in result.trials)


def test_optuna_with_asha_is_seeded_and_reproducible(ray_local, tmp_path):
    first = sampled(tmp_path, "optuna-a")
    second = sampled(tmp_path, "optuna-b")
    assert len(first) == 4
    assert first == second, (first, second)
    assert len({b for _, b, _ in first}) == 4  # Optuna sampled, not a grid


def test_rerun_into_a_finished_run_folder_is_refused(ray_local, tmp_path):
    from core.errors import UserError

    exp = experiment(tmp_path, space={"decoder": "Unet"}, repeats=1)
    exp.run_dir.make_dir()
    (exp.run_dir / "tuner.pkl").write_bytes(b"")
    with pytest.raises(UserError, match="--resume"):
        run_sweep(exp)


def test_real_segmentation_trainable_on_tiny_synthetic_data(ray_local, tmp_path):
    from trainables.data.synth import generate

    data = generate("superalloy", tmp_path / "synth", seed=0, n_train=3, n_val=2, n_test=2,
                    size=64)  # fmt: skip
    exp = experiment(
        tmp_path,
        name="real",
        kind="segmentation",
        data={"root": str(data), "classes": "superalloy"},
        space={"encoder": "resnet18", "decoder": ["Unet", "FPN"], "lr": 1.0e-3},
        repeats=1,
        scheduler={"name": "fifo", "max_epochs": 2},
        train={"crop": 64, "batch_size": 4, "samples_per_epoch": 8, "patience": 2,
               "eval_tile": 64, "eval_overlap": 0},
    )  # fmt: skip
    result = run_sweep(exp)
    rows = result.trials
    assert sorted(r["decoder"] for r in rows) == ["FPN", "Unet"]
    assert all(r[R.STATUS] == R.COMPLETED and r[R.EPOCHS] == 2 for r in rows), rows
    assert all(0 <= r[R.TEST_IOU] <= 1 for r in rows)
    run = json.loads((result.run_dir / R.RUN_FILE).read_bytes())
    assert run["dataset"] and "test" in run["test_splits"] and len(run["classes"]) == 3
    images = table(result.run_dir, R.PER_IMAGE_FILE)
    assert {r[R.SPLIT] for r in images} >= {"test"}


def test_file_uri_storage_writes_the_same_run_folder_and_reports(ray_local, tmp_path):
    from analysis import build_report

    uri = (tmp_path / "runs").as_uri()  # file:///...: pyarrow's LocalFileSystem, via the URI
    exp = experiment(
        tmp_path, name="uri", space={"decoder": ["Unet", "FPN"], "init": ["none"]}, repeats=1,
        scheduler={"name": "fifo", "max_epochs": 2}, train={"sleep": 0.0}, storage=uri,
    )  # fmt: skip
    result = run_sweep(exp)
    assert str(result.run_dir) == f"{uri}/uri"
    folder = tmp_path / "runs" / "uri"
    rows = table(folder, R.TRIALS_FILE)
    assert sorted((r["decoder"], r[R.STATUS]) for r in rows) == [
        ("FPN", R.COMPLETED),
        ("Unet", R.COMPLETED),
    ]
    assert all((folder / r[R.CHECKPOINT]).is_dir() for r in rows)  # relative to the run folder
    assert len(table(folder, R.EPOCHS_FILE)) == 4 and (folder / R.RUN_FILE).is_file()
    out = build_report([str(result.run_dir)], by=["decoder"], out=tmp_path / "report")
    assert (out / "report.html").is_file()
