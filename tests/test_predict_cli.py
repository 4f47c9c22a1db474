"""``microsweep predict`` on tiny images: outputs, bad files named, overwrite, pixel size."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import tifffile
from PIL import Image

from analysis import measure as M
from search.cli import main
from tests.package_factory import make_package
from trainables.package import load_model


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return make_package(tmp_path_factory.mktemp("pkg") / "model")


def images(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(folder / "a.png")
    tifffile.imwrite(folder / "b16.tif", rng.integers(0, 65535, (72, 64), dtype=np.uint16))
    (folder / "empty.png").write_bytes(b"")
    good = (folder / "a.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    return folder


def test_good_images_are_predicted_and_bad_ones_named_with_exit_code_2(package, tmp_path, capsys):
    folder = images(tmp_path / "in")
    out = tmp_path / "pred"
    rc = main(["predict", str(package), str(folder), "--out", str(out),
               "--pixel-size", "0.5", "um"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "empty.png: empty file (0 bytes)" in err and "cut.png: unreadable" in err
    mask = np.asarray(Image.open(out / "masks" / "a.png"))
    expected = load_model(package, device="cpu").predict(np.asarray(Image.open(folder / "a.png")))
    assert np.array_equal(mask, expected)
    assert np.asarray(Image.open(out / "masks" / "b16.png")).shape == (72, 64)
    assert np.asarray(Image.open(out / "overlays" / "a.png")).shape == (64, 80, 3)
    phases = pq.read_table(out / "phases.parquet").to_pylist()
    assert {r[M.IMAGE] for r in phases} == {"a", "b16"}
    frac = [r[M.FRACTION] for r in phases if r[M.IMAGE] == "a" and r[M.CLASS] == "secondary"]
    assert frac == [pytest.approx((mask == 1).mean())]
    particles = pq.read_table(out / "particles.parquet").to_pylist()
    assert particles and {r[M.UNIT] for r in particles} == {"um"}
    assert all(r[M.AREA] == pytest.approx(r[M.AREA_PX] * 0.25) for r in particles)
    assert (out / "particles.csv").read_text().startswith("image,")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and summary["unit"] == "um"
    record = json.loads((out / "predict.json").read_text())
    assert record["model_json"]["encoder"] == "resnet18"
    assert [i["error"] is None for i in record["inputs"]].count(True) == 2
    assert "16-bit grey" in " ".join(record["conversion_notes"])


def test_nothing_is_overwritten_without_overwrite(package, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)).save(
        folder / "x.png"
    )
    out = tmp_path / "pred"
    assert main(["predict", str(package), str(folder / "*.png"), "--out", str(out)]) == 0
    (out / "masks" / "x.png").write_bytes(b"mine")
    assert main(["predict", str(package), str(folder), "--out", str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (out / "masks" / "x.png").read_bytes() == b"mine"
    assert main(["predict", str(package), str(folder), "--out", str(out), "--overwrite"]) == 0
    assert (out / "masks" / "x.png").read_bytes() != b"mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nothere/"], "nothere/: no such file or folder"),
        (["in/*.jpg"], "the pattern matches no file"),
        (["in/x.png", "--pixel-size", "-1", "nm"], "`--pixel-size` must be a positive number"),
    ],
)
def test_bad_arguments_are_one_line_before_any_work(package, tmp_path, capsys, monkeypatch,
                                                     args, message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in" / "x.png")
    assert main(["predict", str(package), *args, "--out", "p"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_export_refuses_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "not a run folder" in capsys.readouterr().err
