"""Pretraining data as file indexes: header checks on large folders, manifests, lr scaling."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import DataError, UserError
from trainables.classify_data import load_image_folder, load_manifest, read_rgb
from trainables.pretraining import PretrainConfig, lr_factor, scaled_lr


def _png(value: int, size: int = 32) -> bytes:
    buf = io.BytesIO()
    ramp = np.add.outer(np.arange(size), np.arange(size)).astype(np.uint8)
    Image.fromarray(ramp + np.uint8(value)).save(buf, format="PNG")
    return buf.getvalue()


def _folder(root: Path, per_class: int, classes: int = 2) -> Path:
    for split, n in (("train", per_class), ("val", max(1, per_class // 10))):
        for c in range(classes):
            sub = root / split / f"c{c}"
            sub.mkdir(parents=True)
            data = _png(40 + 80 * c)
            for i in range(n):
                (sub / f"{i:05d}.png").write_bytes(data)
    return root


def test_bad_image_in_5000_is_one_line_naming_it(tmp_path: Path) -> None:
    root = _folder(tmp_path / "big", per_class=2500)
    bad = root / "train" / "c1" / "01234.png"
    bad.write_bytes(b"this is not a png")
    t0 = time.perf_counter()
    with pytest.raises(DataError) as err:
        load_image_folder(root)
    elapsed = time.perf_counter() - t0
    lines = str(err.value).strip().splitlines()
    assert [line for line in lines if "01234.png" in line] == [
        line for line in lines if "png" in line
    ]
    assert len([line for line in lines if str(bad) in line]) == 1
    assert elapsed < 30, f"the header pass over 5,500 files took {elapsed:.1f} s"


def test_index_holds_paths_not_pixels(tmp_path: Path) -> None:
    data = load_image_folder(_folder(tmp_path / "f", per_class=20))
    assert data.classes == ("c0", "c1") and len(data.splits["train"]) == 40
    assert all(isinstance(p, str) for p in data.splits["train"].paths)
    assert read_rgb(data.splits["train"].paths[-1]).shape == (32, 32, 3)


def test_manifest_csv_and_parquet_give_the_same_index(tmp_path: Path) -> None:
    import pyarrow as pa

    from core.storage import write_parquet

    folder = _folder(tmp_path / "f", per_class=10)
    files = sorted((folder / "train").glob("*/*.png"))
    rows = [(f.relative_to(tmp_path).as_posix(), f.parent.name, "train") for f in files]
    rows += [(str(files[0]), "c0", "val"), (str(files[-1]), "c1", "val")]
    csv = tmp_path / "list.csv"
    csv.write_text("path,label,split\n" + "".join(f"{p},{c},{s}\n" for p, c, s in rows))
    write_parquet(
        tmp_path / "list.parquet",
        pa.table({k: [r[i] for r in rows] for i, k in enumerate(("path", "label", "split"))}),
    )
    a, b = load_manifest(csv), load_manifest(tmp_path / "list.parquet")
    assert a.classes == b.classes == ("c0", "c1")
    assert a.splits["train"].paths == b.splits["train"].paths and len(a.splits["val"]) == 2
    assert Path(a.splits["train"].paths[0]).is_file()  # relative to the manifest's folder
    assert list(a.splits["train"].labels[:10]) == [0] * 10


def test_manifest_problems_are_one_line_each(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "f", per_class=3)
    good = sorted((folder / "train").glob("*/*.png"))
    csv = tmp_path / "m.csv"
    csv.write_text(
        f"path,label,split\n{good[0]},c0,train\n{good[-1]},c1,train\n"
        f"missing.png,c0,train\n{good[1]},c0,test\n"
    )
    with pytest.raises(DataError) as err:
        load_manifest(csv)
    assert "row 5: split must be train or val, but got 'test'" in str(err.value)
    (tmp_path / "cols.csv").write_text("file,class\na.png,x\n")
    with pytest.raises(UserError, match="needs columns path,label"):
        load_manifest(tmp_path / "cols.csv")


def test_lr_is_scaled_linearly_to_the_global_batch_with_warmup() -> None:
    cfg = PretrainConfig.from_dict({"batch_size": 64, "warmup_epochs": 2, "lr_step": 30})
    assert scaled_lr(cfg, workers=2) == pytest.approx(0.1 * 128 / 1024)
    assert scaled_lr(PretrainConfig.from_dict({"batch_size": 1024}), workers=1) == 0.1
    factors = [lr_factor(cfg, e) for e in (0, 1, 2, 29, 30, 60)]
    assert factors == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 0.9, 0.81])


def test_workers_per_trial_is_parsed_and_refused_by_one_process_tasks(tmp_path: Path) -> None:
    from search.experiment import parse_experiment
    from trainables.task import get_task

    folder = _folder(tmp_path / "f", per_class=2)
    raw = {"name": "w", "kind": "pretraining", "space": {}, "data": {"root": str(folder)}}
    exp = parse_experiment({**raw, "resources": {"workers_per_trial": 4}}, base_dir=tmp_path)
    assert exp.resources.workers_per_trial == 4
    with pytest.raises(UserError, match="workers_per_trial"):
        parse_experiment({**raw, "resources": {"workers_per_trial": 0}}, base_dir=tmp_path)
    with pytest.raises(UserError, match=r"`resources\.workers_per_trial` must be 1, but got 2"):
        get_task("segmentation").tuner_trainable(lambda c: None, resources=dict, workers=2)


def test_synth_written_in_parallel_matches_serial(tmp_path: Path, monkeypatch) -> None:
    from trainables.data.synth import _common, generate

    def pngs(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.png")}

    kw = {"n_train": 10, "n_val": 2, "size": 32, "overwrite": True}
    parallel = pngs(generate("micronet", tmp_path / "p", **kw))  # 96 images: forked writers
    monkeypatch.setattr(_common, "PARALLEL_FROM", 10**9)
    assert len(parallel) == 96 and pngs(generate("micronet", tmp_path / "s", **kw)) == parallel


def test_grey_pngs_decode_as_pillow_does_and_damaged_ones_are_named(tmp_path: Path) -> None:
    """8-bit grey PNGs take OpenCV's faster decoder; every other file, and a damaged one
    (OpenCV gives no reason), goes through Pillow."""
    from trainables.classify_data import ImageProblem, _grey_png, read_pixels

    rng = np.random.default_rng(0)
    grey = rng.integers(1, 255, (40, 56), dtype=np.uint8)
    cases = {"grey": Image.fromarray(grey), "rgb": Image.fromarray(np.dstack([grey] * 3)),
             "grey16": Image.fromarray(grey.astype(np.uint16) * 200)}  # fmt: skip
    for name, image in cases.items():
        image.save(tmp_path / f"{name}.png")
    data = (tmp_path / "grey.png").read_bytes()
    assert _grey_png(data) is not None and _grey_png((tmp_path / "rgb.png").read_bytes()) is None
    assert np.array_equal(read_pixels(str(tmp_path / "grey.png"))[..., 0], grey)
    assert read_pixels(str(tmp_path / "rgb.png")).shape == (40, 56, 3)
    assert read_pixels(str(tmp_path / "grey16.png")).dtype == np.uint8
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageProblem, match="truncated"):
        read_pixels(str(tmp_path / "cut.png"))
