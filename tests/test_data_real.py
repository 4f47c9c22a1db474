"""The real NASA benchmark folders (skipped when ../shared/data is absent)."""

from __future__ import annotations

import pytest

from search.cli import main
from trainables.data.check import check_dataset
from trainables.data.dataset import load_dataset
from trainables.data.spec import DataSpec

pytestmark = pytest.mark.shared_data


def test_super1_checks_clean_with_sensible_fractions(nasa_root, capsys):
    rc = main(["data", "check", str(nasa_root / "Super1"), "--classes", "superalloy"])
    _, err = capsys.readouterr()
    assert rc == 0, err
    spec = DataSpec.from_mapping({"root": "Super1", "classes": "superalloy"}, base_dir=nasa_root)
    report = check_dataset(spec)
    assert [(s.name, s.images) for s in report.splits] == [("train", 10), ("val", 4), ("test", 4)]
    for split in report.splits:
        assert split.sizes == {"512x512": split.images}
        f = split.fractions
        assert 40 < f["matrix"] < 60 and 40 < f["secondary"] < 60 and 1 < f["tertiary"] < 5


def test_ebc1_checks_clean_and_warns_about_the_two_orphan_masks(nasa_root, capsys):
    rc = main(["data", "check", str(nasa_root / "EBC1"), "--classes", "ebc"])
    out, err = capsys.readouterr()
    assert rc == 0
    warnings = [line for line in err.splitlines() if "mask without image" in line]
    assert len(warnings) == 2
    assert any("120718#4-B1_50cyc_14260025.tif" in w for w in warnings)
    train_row = next(line for line in out.splitlines() if line.startswith("train "))
    background, oxide = (float(x.rstrip("%")) for x in train_row.split()[-2:])
    assert 75 < background < 90 and 10 < oxide < 25
    assert main(["data", "check", str(nasa_root / "EBC1"), "--classes", "ebc", "--strict"]) == 2


def test_super3_split_file_loads_1_4_4(nasa_root, capsys):
    args = ["data", "check", str(nasa_root / "Super1"), "--split-file", "../splits/Super3.yaml"]
    assert main([*args, "--classes", "superalloy"]) == 0
    spec = DataSpec.from_mapping(
        {"root": "Super1", "split_file": "../splits/Super3.yaml", "classes": "superalloy"},
        base_dir=nasa_root,
    )
    data = load_dataset(spec)
    assert data.label == "Super3"
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 1, "val": 4, "test": 4}
    assert data.splits["train"].names == ["spot7_180d_3"]
