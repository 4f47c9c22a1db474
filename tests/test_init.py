"""``microsweep init``: a checked dataset becomes an experiment file that plans trials."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from search.cli import main
from search.experiment import load_experiment
from search.init_experiment import fit_crop, fit_resources
from search.plan import make_plan
from tests.data_factory import ebc_dataset, ebc_mask, flat_dataset, grey_rgb, write


def init(*args: str) -> int:
    return main(["init", *map(str, args)])


def test_flat_dataset_gets_a_split_file_and_an_experiment_that_plans(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    flat_dataset(tmp_path / "NewAlloy", n=10)
    assert init("NewAlloy", "--classes", "ebc") == 0
    out = capsys.readouterr().out
    split = tmp_path / "NewAlloy" / "splits" / "NewAlloy-seed0.yaml"
    assert split.is_file() and f"wrote split file {split}" in out
    raw = yaml.safe_load((tmp_path / "exp.yaml").read_text())
    assert raw["data"] == {
        "root": "NewAlloy",
        "split_file": "splits/NewAlloy-seed0.yaml",
        "classes": "ebc",
    }
    assert raw["name"] == "NewAlloy" and raw["train"]["augment"] == "ebc"
    assert raw["train"]["crop"] == 32  # 32 px images
    assert raw["resources"]["gpu"] == "auto"
    exp = load_experiment(tmp_path / "exp.yaml")
    assert exp.data.split_file == split.resolve()
    plan = make_plan(exp)
    assert plan.trials > 0
    assert f"trials: {plan.trials}" in out
    assert "next:  microsweep recommend exp.yaml" in out and "microsweep sweep exp.yaml" in out
    # A second init keeps the file unless forced, and reuses the split file.
    before = (tmp_path / "exp.yaml").read_bytes()
    assert init("NewAlloy", "--classes", "ebc", "--preset", "demo") == 2
    assert "pass --force" in capsys.readouterr().err
    assert (tmp_path / "exp.yaml").read_bytes() == before
    assert init("NewAlloy", "--classes", "ebc", "--preset", "demo", "--force") == 0
    assert f"using split file {split}" in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / "exp.yaml").read_text())["name"] == "NewAlloy"


def test_nasa_layout_paths_are_relative_to_the_experiment_file(tmp_path, monkeypatch, capsys):
    ebc_dataset(tmp_path / "data" / "EBC-1")
    monkeypatch.chdir(tmp_path / "data")
    out = tmp_path / "configs" / "ebc1.yaml"
    assert init("EBC-1", "--classes", "ebc", "--out", out, "--preset", "demo") == 0
    raw = yaml.safe_load(out.read_text())
    assert raw["data"] == {"root": "../data/EBC-1", "classes": "ebc"}  # no split file needed
    assert not (tmp_path / "data" / "EBC-1" / "splits").exists()
    monkeypatch.chdir(tmp_path)
    exp = load_experiment(out)
    assert exp.data.root == (tmp_path / "data" / "EBC-1").resolve()
    assert make_plan(exp).trials == 12  # demo: 2 decoders x 2 inits x 3 seeds


def test_init_names_each_warning_it_counts(tmp_path, monkeypatch, capsys):
    from tests.data_factory import ebc_mask

    root = ebc_dataset(tmp_path / "EBC-1")
    write(root / "train_annot" / "orphan.png", ebc_mask(9))  # as EBC1's two masks without images
    monkeypatch.chdir(tmp_path)
    assert init("EBC-1", "--classes", "ebc", "--preset", "demo") == 0
    captured = capsys.readouterr()
    assert "1 warning(s)" in captured.out
    assert "microsweep: warning: train_annot/orphan.png: mask without image" in captured.err


def test_synthetic_nasa_layout_from_data_synth(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    synth = ["data", "synth", "ebc", "ebc", "--size", "80", "--n-train", "2", "--n-val", "1"]
    assert main([*synth, "--n-test", "1"]) == 0
    assert init("ebc", "--classes", "ebc", "--out", "ebc.yaml") == 0
    assert yaml.safe_load(Path("ebc.yaml").read_text())["train"]["crop"] == 64
    assert load_experiment("ebc.yaml").data.split_file is None


def test_real_nasa_dataset(tmp_path, monkeypatch, capsys, nasa_root):
    monkeypatch.chdir(tmp_path)
    assert init(nasa_root / "Super1", "--classes", "superalloy", "--out", "s1.yaml") == 0
    raw = yaml.safe_load(Path("s1.yaml").read_text())
    assert raw["train"]["crop"] == 256  # 512 px images, capped at the preset's crop
    assert load_experiment("s1.yaml").data.root == (nasa_root / "Super1").resolve()


def test_crop_fits_the_smallest_training_image(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for i, (h, w) in enumerate([(200, 300), (150, 100), (400, 400)]):
        image = np.zeros((h, w, 3), np.uint8) + np.uint8(i * 40 + 10)
        image[: h // 2] += 50
        write(tmp_path / "flat" / "images" / f"a{i}.png", image)
        write(tmp_path / "flat" / "masks" / f"a{i}.png", (image[..., 0] > 60).astype(np.uint8))
    assert init("flat", "--classes", "ebc") == 0
    assert yaml.safe_load((tmp_path / "exp.yaml").read_text())["train"]["crop"] == 96
    assert "smallest training image 150x100" in capsys.readouterr().out
    assert fit_crop(1000, cap=256) == 256 and fit_crop(255, cap=256) == 224


def test_resources_run_a_few_trials_at_once():
    assert fit_resources(1) == ({"cpu": 1, "gpu": "auto"}, 1)
    assert fit_resources(2) == ({"cpu": 1, "gpu": "auto"}, 2)
    assert fit_resources(16) == ({"cpu": 4, "gpu": "auto"}, 4)


def _bad_dataset(root: Path) -> Path:
    flat_dataset(root, n=4)
    (root / "masks" / "f02.png").unlink()  # one image without its mask
    return root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing", "--classes", "ebc"], "dataset folder 'missing' does not exist"),
        (["ok", "--classes", "ecb"], "unknown class map 'ecb'; did you mean 'ebc'?"),
        (["ok", "--classes", "ebc", "--preset", "new-materal"], "did you mean 'new-material'"),
        (["bad", "--classes", "ebc"], "f02.png: missing mask"),
        (["tiny", "--classes", "ebc"], "at least 32 px on each side, but the smallest is 16"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.chdir(tmp_path)
    flat_dataset(tmp_path / "ok", n=4)
    _bad_dataset(tmp_path / "bad")
    for i in range(4):
        write(tmp_path / "tiny" / "images" / f"t{i}.png", grey_rgb(i, size=16))
        write(tmp_path / "tiny" / "masks" / f"t{i}.png", ebc_mask(i, size=16))
    assert init(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("microsweep: error:")
    assert not (tmp_path / "exp.yaml").exists()
    assert not any((tmp_path / d / "splits").exists() for d in ("ok", "bad", "tiny"))
