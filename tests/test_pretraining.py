"""Encoder pretraining: typed config, exact resume, and a real Ray trial exporting to the zoo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import DataError, UserError
from trainables import checkpoint as ckpt
from trainables.classify import topk_correct
from trainables.classify_data import load_image_folder, read_rgb
from trainables.models import create_model, encoder_state_dict
from trainables.pretraining import PretrainConfig, PretrainTrial, run_pretraining
from trainables.runtime import Runtime
from trainables.zoo import load_zoo_weights

TINY = "tu-test_resnet"
FP32 = Runtime(device=torch.device("cpu"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainables.data.synth import generate

    out = tmp_path_factory.mktemp("micronet")
    return generate("micronet", out, n_train=4, n_val=2, size=64, n_classes=3, overwrite=True)


def _cfg(tmp_path: Path, **kw) -> PretrainConfig:
    base = {"encoder": TINY, "size": 32, "batch_size": 4, "max_epochs": 2, "lr": 0.01}
    return PretrainConfig.from_dict({**base, **kw})


def test_image_folder_reads_classes_and_labels(folder: Path) -> None:
    data = load_image_folder(folder)
    assert len(data.classes) == 3
    train = data.splits["train"]
    assert len(train) == 12 and sorted(set(train.labels.tolist())) == [0, 1, 2]
    image = read_rgb(train.paths[0])
    assert image.dtype == np.uint8 and image.shape[2] == 3


def test_unreadable_image_is_named(tmp_path: Path, folder: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    bad = next((copy / "train").glob("*/*.png"))
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match=bad.name):
        load_image_folder(copy)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"epocs": 3}, "unknown pretraining key `epocs`"),
        ({"lr": "fast"}, "`lr` must be a number"),
        ({"size": 50}, "multiple of 32"),
        ({"encoder": "resnet81"}, "did you mean 'resnet18'"),
        ({"zoo_name": "x"}, "`zoo_dir` and `zoo_name` go together"),
    ],
)
def test_config_rejects_bad_values(config: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        PretrainConfig.from_dict(config)


def test_topk_correct_counts_hand_computed_cases() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([0, 2, 0])
    assert topk_correct(logits, labels, 1) == 1
    assert topk_correct(logits, labels, 2) == 2
    assert topk_correct(logits, labels, 5) == 3  # k above the class count means all


def test_resumed_trial_continues_exactly(tmp_path: Path, folder: Path) -> None:
    data = load_image_folder(folder)
    cfg = _cfg(tmp_path, max_epochs=2, patience=5)
    whole = PretrainTrial(cfg, data, FP32)
    reports: list[dict] = []
    run_pretraining(whole, lambda m, f: reports.append(m))
    first = PretrainTrial(cfg, data, FP32)
    first.step()
    ckpt.save(tmp_path, first.state())
    resumed = PretrainTrial(cfg, data, FP32)
    resumed.restore(ckpt.load(tmp_path))
    resumed_reports: list[dict] = []
    run_pretraining(resumed, lambda m, f: resumed_reports.append(m))
    assert [r["epoch"] for r in reports] == [1, 2] and [r["epoch"] for r in resumed_reports] == [2]
    assert resumed_reports[0]["train_loss"] == reports[1]["train_loss"]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert reports[-1]["done"] is True and "zoo_entry" not in reports[-1]


def test_divergence_stops_with_one_report(tmp_path: Path, folder: Path) -> None:
    data = load_image_folder(folder)
    trial = PretrainTrial(_cfg(tmp_path, lr=1e30, max_epochs=3), data, FP32)
    reports: list[dict] = []
    run_pretraining(trial, lambda m, f: reports.append(m))
    assert reports[-1].get("diverged") is True and "val_top1" not in reports[-1]


@pytest.mark.slow
def test_pretraining_under_ray_exports_a_loadable_encoder(
    ray_local, tmp_path: Path, folder: Path
) -> None:
    from ray import tune

    from trainables.pretraining import pretraining_trainable

    zoo = tmp_path / "zoo"
    data = load_image_folder(folder)
    space = {"encoder": TINY, "size": 32, "batch_size": 4, "max_epochs": 2, "lr": 0.01,
             "zoo_dir": str(zoo), "zoo_name": "tiny-micro", "precision": "fp32"}  # fmt: skip
    tuner = tune.Tuner(
        tune.with_parameters(pretraining_trainable, data=data),
        param_space=space,
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
    )
    result = tuner.fit()[0]
    assert result.error is None
    assert result.metrics["zoo_entry"] == "tiny-micro" and result.metrics["epoch"] == 2
    assert {"train_loss", "val_loss", "val_top1", "val_top5", "lr"} <= set(result.metrics)
    assert result.checkpoint is not None
    entry, exported = load_zoo_weights(zoo, "tiny-micro")
    assert entry.encoder == TINY and entry.init == "none" and entry.dataset == folder.name
    model = create_model(decoder="Unet", encoder=TINY, num_classes=2, init="zoo:tiny-micro",
                         zoo_dir=zoo)  # fmt: skip
    loaded = encoder_state_dict(model)
    assert loaded.keys() == exported.keys()
    assert all(torch.equal(loaded[k], exported[k]) for k in exported)  # provably loaded
    fresh = encoder_state_dict(create_model(decoder="Unet", encoder=TINY, num_classes=2))
    assert any(not torch.equal(fresh[k], exported[k]) for k in exported if k.endswith("weight"))


def test_cli_refuses_bad_input_in_one_line_before_starting_ray(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.cli import main

    code = main(["pretrain", "--data", str(folder), "--zoo", str(tmp_path), "--name", "../x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "zoo name '../x' is not allowed" in err[0]
    code = main(
        ["pretrain", "--data", str(tmp_path / "nope"), "--zoo", str(tmp_path), "--name", "a"]
    )
    assert code == 2 and "not found" in capsys.readouterr().err


# --- the best model stored once per trial (trainables.best_store) ---------------------------
VAL_TOP1 = (0.5, 0.4, 0.6, 0.55)  # best epoch: 1, 1, 3, 3


def _dropping(monkeypatch: pytest.MonkeyPatch, cfg: PretrainConfig, data, store):
    """A real trial whose val top-1 follows VAL_TOP1, so that the best model is older than the
    current one at epochs 2 and 4 (and their checkpoints name a best file)."""
    from trainables import pretraining
    from trainables.classify import evaluate as real

    trial = PretrainTrial(cfg, data, FP32, best_store=store)

    def evaluate(model, loader, rt):
        loss, _, top5 = real(model, loader, rt)
        return loss, VAL_TOP1[trial.epoch], top5

    monkeypatch.setattr(pretraining, "evaluate", evaluate)
    return trial


def test_checkpoints_name_the_older_best_and_a_restore_across_it_is_exact(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from safetensors.torch import load_file

    from core.storage import Location
    from tests.test_best_store import as_ray, best_files, final_model, resume_stale, untimed
    from trainables.best_store import BestStore

    torch.set_num_threads(1)
    data, cfg = load_image_folder(folder), _cfg(tmp_path, max_epochs=4, patience=5)
    trial_dir, reports = tmp_path / "t", []
    whole = _dropping(monkeypatch, cfg, data, BestStore(Location.parse(trial_dir)))
    run_pretraining(whole, as_ray(trial_dir, reports))
    states = [ckpt.load(trial_dir / f"checkpoint_{i:06d}") for i in range(4)]
    assert all(s.best_model is None for s in states)  # no inline best copy in any state.pt
    assert [list(s.extra.get(ckpt.NEEDS) or []) for s in states] == [
        [], ["best/epoch_000001.safetensors"], [], ["best/epoch_000003.safetensors"]]  # fmt: skip
    assert best_files(trial_dir) == ["epoch_000001.safetensors", "epoch_000003.safetensors"]
    assert reports[-1]["best_epoch"] == 3 and reports[-1]["done"]

    resumed_dir, again = resume_stale(
        trial_dir, tmp_path, lambda s: _dropping(monkeypatch, cfg, data, s), run_pretraining
    )
    timed = ("wall_s", "data_wait_s")
    assert untimed(again[-1], timed) == untimed(reports[-1], timed)
    # no zoo entry: the final checkpoint keeps the best weights (epoch 3's, not the last model)
    final, resumed_final = final_model(trial_dir), final_model(resumed_dir)
    best3 = load_file(trial_dir / "best" / "epoch_000003.safetensors")
    for key, value in best3.items():
        assert torch.equal(final[key], value) and torch.equal(resumed_final[key], value), key
    assert any(not torch.equal(whole.model.state_dict()[k], v) for k, v in best3.items())
