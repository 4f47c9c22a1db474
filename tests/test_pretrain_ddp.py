"""A pretraining sweep whose trials are 2-worker Ray Train jobs, exported to the zoo and used
by a segmentation trial as ``zoo:NAME``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search.experiment import parse_experiment
from tests.test_s3 import s3_env  # noqa: F401  (the moto S3 server fixture)
from trainables.models import create_model, encoder_state_dict
from trainables.zoo import load_zoo_weights

TINY = "tu-test_resnet"
TRAIN_IMAGES = 5000  # the size; 32 px PNGs, of which 64 are drawn per epoch


def _folder(root: Path) -> Path:
    from tests.test_pretrain_data import _folder as tiny_folder

    return tiny_folder(root, per_class=TRAIN_IMAGES // 2)


@pytest.mark.slow
def test_ddp_pretraining_sweep_exports_an_encoder_segmentation_uses(tmp_path: Path) -> None:
    from search.launch import run_sweep  # starts its own local Ray unless one runs in-process

    data, zoo = _folder(tmp_path / "micro"), tmp_path / "zoo"
    exp = parse_experiment(
        {
            "name": "ddp",
            "kind": "pretraining",
            "data": {"root": str(data)},
            "space": {"zoo_name": ["tiny-a", "tiny-b"]},
            "train": {
                "encoder": TINY,
                "size": 32,
                "batch_size": 8,
                "samples_per_epoch": 64,
                "zoo_dir": str(zoo),
                "precision": "fp32",
                "loader_workers": 0,
            },
            "scheduler": {"name": "asha", "max_epochs": 2, "grace_epochs": 1},
            "resources": {"cpu": 1, "workers_per_trial": 2},
            "storage": str(tmp_path / "runs"),
        },
        base_dir=tmp_path,
    )
    result = run_sweep(exp)
    rows = {r["zoo_entry"]: r for r in result.trials if r.get("zoo_entry")}
    assert rows, result.trials
    name = next(iter(rows))
    entry, exported = load_zoo_weights(zoo, name)
    assert entry.encoder == TINY and entry.dataset == "micro"
    model = create_model(decoder="Unet", encoder=TINY, num_classes=2, init=f"zoo:{name}",
                         zoo_dir=zoo)  # fmt: skip
    loaded = encoder_state_dict(model)
    assert all(torch.equal(loaded[k], exported[k]) for k in exported)
    _segmentation_uses(tmp_path, zoo, name)


def _segmentation_uses(tmp_path: Path, zoo: Path, name: str) -> None:
    """A segmentation trial through the launcher starts from ``zoo:NAME``."""
    from search.one_trial import one_trial_experiment, run_one_trial
    from trainables.data.synth import generate

    seg = generate("superalloy", tmp_path / "seg", n_train=2, n_val=1, n_test=1, size=64)
    config = {"encoder": TINY, "init": f"zoo:{name}", "zoo_dir": str(zoo), "max_epochs": 1,
              "samples_per_epoch": 4, "crop": 64, "batch_size": 2, "precision": "fp32"}  # fmt: skip
    exp = one_trial_experiment(
        "segmentation",
        config,
        data={"root": str(seg), "classes": "superalloy"},
        run_dir=tmp_path / "seg-runs" / "train",
        cpus=1,
    )
    row = run_one_trial(exp)
    assert row["init"] == f"zoo:{name}" and row["status"] == "completed", row


@pytest.mark.slow
def test_ddp_trial_exports_its_stored_best_and_pruning_leaves_no_state(tmp_path: Path) -> None:
    """Val top-1 stays at 0.5 on this two-colour folder for 3 epochs: the best is epoch 1's,
    which rank 0 stores once; the zoo gets that encoder, not the last one."""
    from safetensors.torch import load_file

    from core.storage import Location
    from search.launch import run_sweep
    from search.pruning import prune_trial
    from tests.test_pretrain_data import _folder as tiny_folder
    from trainables import checkpoint as ckpt
    from trainables.report_file import REPORT_FILE, parse_needs

    data = tiny_folder(tmp_path / "micro", per_class=16)
    zoo, runs = tmp_path / "zoo", tmp_path / "runs"
    exp = parse_experiment(
        {
            "name": "ddp",
            "kind": "pretraining",
            "data": {"root": str(data)},
            "space": {"zoo_name": ["tiny-best"]},
            "train": {
                "encoder": TINY,
                "size": 32,
                "batch_size": 4,
                "samples_per_epoch": 8,
                "zoo_dir": str(zoo),
                "precision": "fp32",
                "loader_workers": 0,
            },
            "scheduler": {"name": "fifo", "max_epochs": 3},
            "resources": {"cpu": 1, "workers_per_trial": 2},
            "fault": {"keep": "all"},
            "storage": str(runs),
        },
        base_dir=tmp_path,
    )
    (row,) = run_sweep(exp).trials
    assert (row["status"], row["epochs"], row["best_epoch"]) == ("completed", 3, 1), row
    final = runs / "ddp" / row["checkpoint"]
    state = ckpt.load(final)
    needs = parse_needs((final / REPORT_FILE).read_bytes())
    assert state.best_model is None and list(needs) == ["best/epoch_000001.safetensors"]
    best = load_file(final.parent / "best" / "epoch_000001.safetensors")
    _, exported = load_zoo_weights(zoo, "tiny-best")
    assert all(torch.equal(exported[k], best[f"encoder.{k}"]) for k in exported)
    assert any(not torch.equal(exported[k], state.model[f"encoder.{k}"]) for k in exported)
    # Ray Train's own folder holds its one latest checkpoint, not every epoch's
    assert len(list((final.parent / "train").rglob(ckpt.STATE_FILE))) == 1

    prune_trial(Location.parse(runs / "ddp"), row["checkpoint"], keep="best")
    left = {p.relative_to(final.parent).as_posix() for p in final.parent.rglob("*") if p.is_file()}
    assert not any(n.endswith(ckpt.STATE_FILE) or n.startswith(("best/", "train/")) for n in left)
    assert f"{final.name}/{REPORT_FILE}" in left


@pytest.mark.slow
def test_ddp_trial_on_s3_stores_its_best_there_and_pruning_leaves_no_state(
    tmp_path: Path,
    s3_env,  # noqa: F811
) -> None:
    """The same on ``storage: s3://`` (moto): Ray Train's run folder, the best file and the
    pruning all go through the sweep's S3 filesystem. A subprocess: its Ray inherits AWS_*."""
    import subprocess
    import sys

    import yaml
    from safetensors.torch import load

    from core.storage import Location
    from search.pruning import prune_trial
    from tests.test_pretrain_data import _folder as tiny_folder
    from tests.test_s3 import BUCKET, REPO, objects

    data, zoo, run = tiny_folder(tmp_path / "micro", per_class=16), tmp_path / "zoo", "ddps3"
    raw = {"name": run, "kind": "pretraining", "data": {"root": str(data)},
           "space": {"zoo_name": ["tiny-s3"]}, "scheduler": {"name": "fifo", "max_epochs": 3},
           "train": {"encoder": TINY, "size": 32, "batch_size": 4, "samples_per_epoch": 8,
                     "zoo_dir": str(zoo), "precision": "fp32", "loader_workers": 0},
           "resources": {"cpu": 1, "workers_per_trial": 2}, "fault": {"keep": "all"},
           "storage": f"s3://{BUCKET}/runs"}  # fmt: skip
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(raw))
    code = (
        "import sys; from search.experiment import load_experiment; "
        "from search.launch import run_sweep; run_sweep(load_experiment(sys.argv[1]))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "e.yaml")], cwd=REPO,
                          env={**s3_env, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=400, start_new_session=True)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    uri = f"s3://{BUCKET}/runs/{run}"
    (row,) = (Location.parse(uri) / "trials.parquet").read_table().to_pylist()
    trial = row["checkpoint"].split("/")[0]
    files = {f.removeprefix(f"{trial}/") for f in objects(uri) if f.startswith(f"{trial}/")}
    assert len([f for f in files if f.startswith("train/") and f.endswith("state.pt")]) == 1
    best = load((Location.parse(uri) / trial / "best/epoch_000001.safetensors").read_bytes())
    _, exported = load_zoo_weights(zoo, "tiny-s3")
    assert all(torch.equal(exported[k], best[f"encoder.{k}"]) for k in exported)

    prune_trial(Location.parse(uri), row["checkpoint"], keep="best")
    left = {f.removeprefix(f"{trial}/") for f in objects(uri) if f.startswith(f"{trial}/")}
    assert not any(f.endswith("state.pt") or f.startswith(("best/", "train/")) for f in left)
    assert f"{row['checkpoint'].split('/')[1]}/report.json" in left
