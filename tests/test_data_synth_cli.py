"""`microsweep data synth` writes data that `data check` and `load_dataset` accept as they are."""

from __future__ import annotations

import pytest

from search.cli import main
from trainables.data.dataset import load_dataset
from trainables.data.spec import load_data_spec

pytest.importorskip("trainables.data.synth")


@pytest.mark.parametrize("kind", ["superalloy", "ebc"])
def test_synth_output_checks_clean_and_loads(tmp_path, capsys, kind):
    out = tmp_path / kind
    args = ["--size", "64", "--n-train", "2", "--n-val", "1", "--n-test", "1", "--different-test"]
    assert main(["data", "synth", kind, str(out), *args]) == 0
    assert main(["data", "check", str(out / "data.yaml"), "--crop", "64"]) == 0, capsys.readouterr()
    data = load_dataset(load_data_spec(out / "data.yaml"))
    assert {k: len(v) for k, v in data.splits.items()} == {
        "train": 2,
        "val": 1,
        "test": 1,
        "different_test": 1,
    }
    assert data.test_splits == ["test", "different_test"]
    masks = data.splits["train"].masks
    assert all(set(m.ravel()) - {0} for m in masks)  # every class map value is recognised


def test_synth_unknown_kind_answers_with_the_nearest(tmp_path, capsys):
    assert main(["data", "synth", "superaloy", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'superalloy'?" in err and err.count("\n") == 1
