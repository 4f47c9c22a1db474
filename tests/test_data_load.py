"""load_dataset, split files and flat-layout splits (``microsweep data split``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from core.errors import DataError, UserError
from search.cli import main
from tests.data_factory import ebc_dataset, flat_dataset, superalloy_dataset
from trainables.data.dataset import load_dataset
from trainables.data.spec import DataSpec


def spec(root: Path, classes: object = "ebc", **extra: object) -> DataSpec:
    return DataSpec.from_mapping({"root": str(root), "classes": classes, **extra}, base_dir=root)


def test_loaded_arrays_are_read_only_rgb_uint8_and_class_indices(tmp_path):
    root = superalloy_dataset(tmp_path / "sa", counts={"train": 2, "val": 1, "different_test": 1})
    data = load_dataset(spec(root, "superalloy"))
    train = data.splits["train"]
    assert data.label == "sa" and data.classes == ("matrix", "secondary", "tertiary")
    assert train.names == ["strain0", "strain1"]
    for image, mask in zip(train.images, train.masks, strict=True):
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert mask.shape == (32, 32) and set(np.unique(mask)) == {0, 1, 2}
        assert not image.flags.writeable and not mask.flags.writeable
        with pytest.raises(ValueError):
            image[0, 0, 0] = 1
    assert data.test_splits == ["different_test"]


def test_parallel_and_serial_decoding_give_the_same_arrays(tmp_path):
    root = ebc_dataset(tmp_path / "ebc", counts={"train": 4, "val": 2})
    a = load_dataset(spec(root), workers=1).splits["train"]
    b = load_dataset(spec(root), workers=4).splits["train"]
    assert a.names == b.names
    assert all((x == y).all() for x, y in zip(a.masks + a.images, b.masks + b.images, strict=True))


def test_load_dataset_raises_every_problem_at_once(tmp_path):
    root = ebc_dataset(tmp_path / "ebc")
    (root / "train_annot" / "imgtrain0.png").unlink()
    (root / "val" / "imgval0.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_dataset(spec(root))
    assert len(err.value.problems) == 2


def test_missing_val_split_is_refused_for_training(tmp_path):
    root = ebc_dataset(tmp_path / "ebc", counts={"train": 2})
    with pytest.raises(DataError, match="no 'val' split"):
        load_dataset(spec(root))


def test_spec_errors_name_the_key(tmp_path):
    root = ebc_dataset(tmp_path / "ebc")
    with pytest.raises(
        UserError, match=r"unknown key `data.split_fle`; did you mean `data.split_file`"
    ):
        DataSpec.from_mapping(
            {"root": str(root), "classes": "ebc", "split_fle": "x"}, base_dir=root
        )
    with pytest.raises(UserError, match=r"`data.split_file`: file .* does not exist"):
        spec(root, split_file="nope.yaml")
    with pytest.raises(UserError, match=r"`data.classes` is missing"):
        DataSpec.from_mapping({"root": str(root)}, base_dir=root)


def write_split(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def entry(split: str, name: str, prefix: str = "") -> dict:
    return {"image": f"{prefix}{split}/{name}.png", "mask": f"{prefix}{split}_annot/{name}.png"}


def test_split_file_paths_are_found_from_its_folder_then_its_parent(tmp_path):
    # shared layout: <top>/ebc (dataset) and <top>/splits/small.yaml with paths "ebc/..."
    root = ebc_dataset(tmp_path / "ebc", counts={"train": 3, "val": 1, "test": 1})
    doc = {
        "name": "small",
        "splits": {
            "train": [entry("train", "imgtrain2", "ebc/")],
            "val": [entry("val", "imgval0", "ebc/")],
        },
    }
    write_split(tmp_path / "splits" / "small.yaml", doc)
    data = load_dataset(spec(root, split_file="../splits/small.yaml"))
    assert data.label == "small"
    assert data.splits["train"].names == ["imgtrain2"] and list(data.splits) == ["train", "val"]


def test_split_file_base_key(tmp_path):
    root = ebc_dataset(tmp_path / "ebc")
    doc = {
        "base": "../ebc",
        "splits": {"train": [entry("train", "imgtrain0")], "val": [entry("val", "imgval0")]},
    }
    write_split(tmp_path / "elsewhere" / "s.yaml", doc)
    data = load_dataset(spec(root, split_file=str(tmp_path / "elsewhere" / "s.yaml")))
    assert data.splits["val"].names == ["imgval0"]


def test_split_file_with_a_missing_file_and_a_bad_entry(tmp_path, capsys):
    root = ebc_dataset(tmp_path / "ebc")
    doc = {
        "splits": {
            "train": [entry("train", "nothere"), {"image": "x.png"}],
            "val": [entry("val", "imgval0")],
        }
    }
    write_split(root / "s.yaml", doc)
    rc = main(["data", "check", str(root), "--classes", "ebc", "--split-file", "s.yaml"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2
    assert (
        "microsweep: error: train/nothere.png: image listed in s.yaml: split 'train' does not exist"
        in err
    )
    assert (
        "microsweep: error: s.yaml: split 'train' entry 2 must be {image: PATH, mask: PATH}" in err
    )


def test_flat_layout_needs_a_split_file_to_train_and_check_reads_it_whole(tmp_path, capsys):
    root = flat_dataset(tmp_path / "new alloy")
    with pytest.raises(DataError, match="flat layout needs a split file"):
        load_dataset(spec(root))
    assert main(["data", "check", str(root), "--classes", "ebc"]) == 0
    assert "all    10" in capsys.readouterr().out


def test_data_split_is_reproducible_and_loads(tmp_path, capsys):
    root = flat_dataset(tmp_path / "new alloy")
    assert main(["data", "split", str(root), "--seed", "3", "--ratios", "0.6,0.2,0.2"]) == 0
    path = root / "splits" / "new alloy-seed3.yaml"
    first = path.read_text()
    assert main(["data", "split", str(root), "--seed", "3", "--ratios", "0.6,0.2,0.2"]) == 0
    assert path.read_text() == first
    assert main(["data", "split", str(root), "--seed", "4", "--ratios", "0.6,0.2,0.2"]) == 0
    assert (root / "splits" / "new alloy-seed4.yaml").read_text() != first
    data = load_dataset(spec(root, split_file="splits/new alloy-seed3.yaml"))
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 6, "val": 2, "test": 2}
    names = [n for s in data.splits.values() for n in s.names]
    assert sorted(names) == [f"f{i:02d}" for i in range(10)]


def test_data_split_folds_cover_every_image_once_as_test(tmp_path, capsys):
    root = flat_dataset(tmp_path / "flat", n=7)
    assert main(["data", "split", str(root), "--folds", "3"]) == 0
    tests = []
    for i in range(1, 4):
        data = load_dataset(spec(root, split_file=f"splits/flat-seed0-fold{i}of3.yaml"))
        parts = [set(data.splits[k].names) for k in ("train", "val", "test")]
        assert sum(map(len, parts)) == 7 and not (parts[0] & parts[1] or parts[1] & parts[2])
        tests += sorted(parts[2])
    assert sorted(tests) == [f"f{i:02d}" for i in range(7)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ratios", "0.5,0.2"], "ratios must sum to 1"),
        (["--ratios", "1,0,0"], "train and val > 0"),
        (["--ratios", "a,b"], "--ratios must be numbers"),
        (["--folds", "2"], "folds must be >= 3"),
        (["--folds", "99"], "folds must be <= the number of images (10)"),
    ],
)
def test_data_split_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    root = flat_dataset(tmp_path / "flat")
    assert main(["data", "split", str(root), *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0]


def test_data_split_refuses_a_nasa_layout(tmp_path, capsys):
    root = ebc_dataset(tmp_path / "ebc")
    assert main(["data", "split", str(root)]) == 2
    assert "data split needs a flat layout" in capsys.readouterr().err
