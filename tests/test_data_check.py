"""`microsweep data check`: every bad-input case exits 2 with one line naming the file and rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search.cli import main
from tests.data_factory import ebc_dataset, ebc_mask, grey_rgb, superalloy_dataset, write


def check(capsys, *args: str) -> tuple[int, str, list[str]]:
    rc = main(["data", "check", *args])
    out, err = capsys.readouterr()
    return rc, out, err.splitlines()


def assert_error(lines: list[str], start: str) -> None:
    wanted = f"microsweep: error: {start}"
    assert any(line.startswith(wanted) for line in lines), f"no line {wanted!r} in {lines}"
    assert not any("Traceback" in line for line in lines)


@pytest.fixture
def ebc(tmp_path: Path) -> Path:
    return ebc_dataset(tmp_path / "ebc")


def test_valid_dataset_reports_counts_sizes_and_fractions(ebc, capsys):
    rc, out, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 0, err
    assert "train  2       32x32 (2)" in out
    # half oxide (1), minus 4 crack pixels (2) inside the band, counted as background
    val_row = next(line for line in out.splitlines() if line.startswith("val "))
    assert val_row.split()[-2:] == ["50.4%", "49.6%"]
    assert "8-bit RGB (2)" in out
    assert err == []


def test_missing_mask(ebc, capsys):
    (ebc / "train_annot" / "imgtrain0.png").unlink()
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "train/imgtrain0.png: missing mask")


def test_mask_without_image_is_a_warning_then_an_error_with_strict(ebc, capsys):
    (ebc / "train" / "imgtrain1.png").unlink()
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 0
    assert any(
        line.startswith("microsweep: warning: train_annot/imgtrain1.png: mask without image")
        for line in err
    )
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc", "--strict")
    assert rc == 2
    assert_error(err, "train_annot/imgtrain1.png: mask without image")


def test_size_mismatch(ebc, capsys):
    write(ebc / "val_annot" / "imgval0.png", ebc_mask(0, size=16))
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "val_annot/imgval0.png: mask is 16x16 but its image is 32x32")


def test_disallowed_mask_values_are_counted_and_lenient_makes_them_warnings(ebc, capsys):
    mask = ebc_mask(0)
    mask[0, :5] = 7
    write(ebc / "test_annot" / "imgtest0.png", mask)
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "test_annot/imgtest0.png: 5 pixels (0.49%) have values the class map")
    assert "does not allow: 7 (allowed: 0, 1, 2)" in "\n".join(err)
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc", "--lenient")
    assert rc == 0
    assert any(
        line.startswith("microsweep: warning: test_annot/imgtest0.png: 5 pixels") for line in err
    )


def test_disallowed_colours_with_an_explicit_map_without_rest(tmp_path, capsys):
    root = superalloy_dataset(tmp_path / "sa", counts={"train": 1, "val": 1})
    classes = "{secondary: [0, 0, 255], tertiary: [255, 0, 0]}"
    rc, _, err = check(capsys, str(root), "--classes", classes)
    assert rc == 2
    assert_error(err, "train_annot/strain0_mask.tif: 752 pixels (73.44%)")  # 1024 - 256 - 16
    # the superalloy preset takes every other colour as matrix: no problem there
    rc, _, err = check(capsys, str(root), "--classes", "superalloy")
    assert rc == 0, err


def test_empty_split(ebc, capsys):
    for f in (ebc / "val").iterdir():
        f.unlink()
    for f in (ebc / "val_annot").iterdir():
        f.unlink()
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "val/: empty split 'val' (no images)")


def test_truncated_file(ebc, capsys):
    path = ebc / "train" / "imgtrain0.png"
    path.write_bytes(path.read_bytes()[:200])
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "train/imgtrain0.png: unreadable or truncated image")


def test_truncated_tiff(tmp_path, capsys):
    root = superalloy_dataset(tmp_path / "sa")
    path = root / "train" / "strain0.tif"
    path.write_bytes(path.read_bytes()[:300])
    rc, _, err = check(capsys, str(root), "--classes", "superalloy")
    assert rc == 2
    assert_error(err, "train/strain0.tif: unreadable or truncated TIFF")


def test_non_image_file_with_image_extension(ebc, capsys):
    (ebc / "train" / "imgtrain0.png").write_text("these are not pixels\n")
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "train/imgtrain0.png: not an image: the content is no known image format")


def test_zero_byte_file(ebc, capsys):
    (ebc / "train_annot" / "imgtrain0.png").write_bytes(b"")
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "train_annot/imgtrain0.png: empty file (0 bytes)")


def test_duplicate_stems(ebc, capsys):
    write(ebc / "train" / "imgtrain0.tif", grey_rgb(5))
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "train/imgtrain0.png: duplicate stem 'imgtrain0' (also imgtrain0.tif)")


def test_nan_in_float_image(ebc, capsys):
    image = np.random.default_rng(0).random((32, 32), dtype=np.float32)
    image[3, 4] = np.nan
    image[5, 6] = np.inf
    (ebc / "train" / "imgtrain0.png").unlink()
    write(ebc / "train" / "imgtrain0.tif", image)
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "train/imgtrain0.tif: float image has 2 NaN/inf values")


def test_constant_image(ebc, capsys):
    write(ebc / "val" / "imgval0.png", np.full((32, 32, 3), 17, np.uint8))
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "val/imgval0.png: constant image (every pixel is 17)")


def test_image_smaller_than_crop(ebc, capsys):
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc", "--crop", "64")
    assert rc == 2
    assert_error(err, "train/imgtrain0.png: image 32x32 is smaller than the training crop 64")
    assert not any("val/" in line for line in err)  # val/test are evaluated whole
    rc, _, _ = check(capsys, str(ebc), "--classes", "ebc", "--crop", "32")
    assert rc == 0


def test_all_problems_are_listed_not_only_the_first(ebc, capsys):
    (ebc / "train_annot" / "imgtrain0.png").unlink()
    (ebc / "test" / "imgtest0.png").write_bytes(b"")
    rc, _, err = check(capsys, str(ebc), "--classes", "ebc")
    assert rc == 2
    assert_error(err, "train/imgtrain0.png: missing mask")
    assert_error(err, "test/imgtest0.png: empty file (0 bytes)")


def test_paths_with_spaces_hash_and_parentheses(tmp_path, capsys):
    root = ebc_dataset(tmp_path / "my data #2 (copy)", stem="a b#1 (x) ")
    rc, out, err = check(capsys, str(root), "--classes", "ebc")
    assert rc == 0, err
    assert "OK: 4 images in 3 splits" in out


def test_yaml_data_block_with_relative_root_and_explicit_classes(ebc, tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "data:\n  root: ebc\n  classes:\n    background: {values: [0, 2]}\n    oxide: 1\n"
    )
    rc, out, err = check(capsys, str(cfg))
    assert rc == 0, err
    assert "classes (custom): background, oxide" in out


def test_unknown_preset_answers_with_nearest_match(ebc, capsys):
    rc, _, err = check(capsys, str(ebc), "--classes", "superaloy")
    assert rc == 2
    assert err == [
        "microsweep: error: unknown class map 'superaloy'; did you mean 'superalloy'? "
        "(or give an explicit mapping)"
    ]


def test_missing_classes_and_missing_root_are_one_line_errors(ebc, tmp_path, capsys):
    rc, _, err = check(capsys, str(ebc))
    assert rc == 2 and len(err) == 1 and "pass --classes" in err[0]
    rc, _, err = check(capsys, str(tmp_path / "nope"), "--classes", "ebc")
    assert rc == 2 and len(err) == 1 and "does not exist" in err[0]
    rc, _, err = check(capsys, str(tmp_path), "--classes", "ebc")
    assert rc == 2 and "is not a dataset folder" in err[0]
