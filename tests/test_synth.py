"""Synthetic datasets: deterministic, in the real data's formats, plausible, safe to write."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from core.errors import UserError
from trainables.data.synth import KINDS, generate, micronet
from trainables.data.synth._common import image_rng

SIZE = 64
SMALL = {"n_train": 3, "n_val": 2, "n_test": 2, "size": SIZE}
BLUE, RED = (0, 0, 255, 255), (255, 0, 0, 255)


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def pairs(root: Path, split: str, mask_suffix: str) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(image, mask, mask mode) of every image of ``split``."""
    images = sorted((root / split).glob("*.tif"))
    assert images, f"no images in {root / split}"
    out = []
    for img_path in images:
        mask_path = root / f"{split}_annot" / f"{img_path.stem}{mask_suffix}.tif"
        img, mask = Image.open(img_path), Image.open(mask_path)
        assert img.mode == "RGB" and img.size == (SIZE, SIZE)
        out.append((np.asarray(img), np.asarray(mask), mask.mode))
    return out


@pytest.fixture(scope="module")
def superalloy_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "super"
    return generate("superalloy", out, seed=3, different_test=True, **SMALL)


@pytest.fixture(scope="module")
def ebc_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("ebc", tmp_path_factory.mktemp("synth") / "ebc", seed=3, **SMALL)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_bytes_other_seed_other_bytes(kind: str, tmp_path: Path) -> None:
    opts = {"n_train": 2, "n_val": 1, "size": SIZE}
    if kind == "micronet":
        opts["n_classes"] = 3
    else:
        opts["n_test"] = 1
    # the same folder name: data.yaml names the dataset after its folder
    first = digests(generate(kind, tmp_path / "a" / "ds", seed=7, **opts))
    again = digests(generate(kind, tmp_path / "b" / "ds", seed=7, **opts))
    other = digests(generate(kind, tmp_path / "c" / "ds", seed=8, **opts))
    assert first == again
    images = [k for k in first if k.endswith((".tif", ".png"))]
    assert images and all(first[k] != other[k] for k in images)


def test_images_do_not_depend_on_other_split_counts(tmp_path: Path) -> None:
    few = digests(generate("ebc", tmp_path / "few", n_train=1, n_val=1, n_test=1, size=SIZE))
    many = digests(generate("ebc", tmp_path / "many", n_train=3, n_val=1, n_test=1, size=SIZE))
    assert few["val/val_000.tif"] == many["val/val_000.tif"]


def test_superalloy_masks_are_overlays_like_the_real_data(superalloy_out: Path) -> None:
    for split in ("train", "val", "test", "different_test"):
        for img, mask, mode in pairs(superalloy_out, split, "_mask"):
            assert mode == "RGBA" and mask.dtype == np.uint8
            blue = np.all(mask == BLUE, axis=-1)
            red = np.all(mask == RED, axis=-1)
            rest = ~(blue | red)
            assert np.array_equal(mask[rest][:, :3], img[rest])  # grey of the image
            assert np.all(mask[..., 3] == 255)
            assert np.all(img[..., 0] == img[..., 2])
            assert 0.2 <= blue.mean() <= 0.62, f"secondary fraction {blue.mean():.2f}"
            assert 0.002 <= red.mean() <= 0.08, f"tertiary fraction {red.mean():.3f}"
            assert len(np.unique(mask[rest][:, 0])) > 10  # many colours, like the real masks


def test_superalloy_different_test_is_inverted_and_noisier(superalloy_out: Path) -> None:
    def contrast_and_noise(split: str) -> tuple[float, float]:
        signs, noise = [], []
        for img, mask, _ in pairs(superalloy_out, split, "_mask"):
            grey = img[..., 0].astype(float)
            blue = np.all(mask == BLUE, axis=-1)
            signs.append(grey[blue].mean() - grey[~blue].mean())
            noise.append(np.abs(np.diff(grey, axis=1)).mean())
        return float(np.mean(signs)), float(np.mean(noise))

    sign_test, noise_test = contrast_and_noise("test")
    sign_diff, noise_diff = contrast_and_noise("different_test")
    assert sign_test < 0 < sign_diff  # precipitates dark in test, bright under the shift
    assert noise_diff > 1.5 * noise_test


def test_ebc_masks_are_indices_with_an_oxide_band_and_cracks(ebc_out: Path) -> None:
    cracked = 0
    for split in ("train", "val", "test"):
        for _img, mask, mode in pairs(ebc_out, split, ""):
            assert mode == "L" and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 1, 2}
            oxide = mask == 1
            assert 0.03 <= oxide.mean() <= 0.25
            rows = np.flatnonzero(oxide.any(axis=1))
            assert oxide.any(axis=0).all(), "the band spans the image width"
            assert rows.max() - rows.min() < 0.6 * SIZE, "a band, not scattered pixels"
            cracked += bool((mask == 2).any())
    assert cracked >= 5  # of 7 images


def test_segmentation_outputs_carry_records(superalloy_out: Path) -> None:
    record = json.loads((superalloy_out / "synth.json").read_text())
    assert record["kind"] == "superalloy" and record["seed"] == 3 and record["size"] == SIZE
    assert record["counts"] == {"train": 3, "val": 2, "test": 2, "different_test": 2}
    assert record["complete"] is True and "version" in record
    block = yaml.safe_load((superalloy_out / "data.yaml").read_text())["data"]
    assert block["root"] == "." and block["classes"] == "superalloy"


def test_micronet_is_an_image_folder_per_class(tmp_path: Path) -> None:
    out = generate("micronet", tmp_path / "mn", n_train=2, n_val=1, size=48, n_classes=5)
    classes = list(micronet.CLASSES)[:5]
    for split, n in (("train", 2), ("val", 1)):
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(classes)
        for name in classes:
            files = sorted((out / split / name).glob("*.png"))
            assert len(files) == n
            img = Image.open(files[0])
            assert img.mode == "L" and img.size == (48, 48)  # grey, like most micrographs
    assert not (out / "data.yaml").exists()
    assert json.loads((out / "synth.json").read_text())["classes"] == classes


def _radial_spectrum(img: np.ndarray) -> np.ndarray:
    """Log power per spatial frequency of the standardised image (brightness/contrast-free)."""
    grey = (img - img.mean()) / (img.std() + 1e-6)
    power = np.abs(np.fft.fft2(grey)) ** 2
    n = img.shape[0]
    radius = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]) * n
    ring = np.minimum(radius.astype(int), n // 2).ravel()
    return np.log(np.bincount(ring, power.ravel())[1:] / np.bincount(ring)[1:] + 1e-6)


def _nearest_centroid_accuracy(train: tuple, val: tuple) -> float:
    (x_tr, y_tr), (x_va, y_va) = train, val
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a, b = (x_tr - mu) / sd, (x_va - mu) / sd
    centroids = np.array([a[y_tr == c].mean(0) for c in np.unique(y_tr)])
    pred = np.argmin(((b[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return float((pred == y_va).mean())


def test_micronet_classes_are_learnable_by_structure_not_by_brightness() -> None:
    names = list(micronet.CLASSES)

    def features(split: int, n: int) -> tuple:
        spectra, levels, labels = [], [], []
        for c, name in enumerate(names):
            for i in range(n):
                img = micronet.render(image_rng(0, split, c, i), name, 64).astype(float)
                spectra.append(_radial_spectrum(img))
                levels.append([img.mean(), img.std()])
                labels.append(c)
        return np.array(spectra), np.array(levels), np.array(labels)

    (s_tr, l_tr, y_tr), (s_va, l_va, y_va) = features(1, 10), features(2, 5)
    chance = 1 / len(names)
    assert _nearest_centroid_accuracy((s_tr, y_tr), (s_va, y_va)) >= 3 * chance
    assert _nearest_centroid_accuracy((l_tr, y_tr), (l_va, y_va)) <= 2.5 * chance


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_train": 0}, "`n_train` must be an integer >= 1, but got 0"),
        ({"n_val": -2}, "`n_val`"),
        ({"n_test": 0}, "`n_test`"),
        ({"size": 16}, "`size` must be in [32, 4096] pixels, but got 16"),
        ({"seed": -1}, "`seed`"),
    ],
)
def test_bad_numbers_name_the_option(kwargs: dict, needle: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        generate("superalloy", tmp_path / "x", **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()


def test_unknown_kind_suggests_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown synthetic dataset kind 'superaloy'; did you mean"):
        generate("superaloy", tmp_path / "x")


def test_micronet_as_uncompressed_tiff_holds_the_same_pixels(tmp_path: Path) -> None:
    from trainables.classify_data import load_image_folder, read_pixels

    kw = {"n_train": 2, "n_val": 1, "size": 48, "n_classes": 2}
    png = generate("micronet", tmp_path / "png", **kw)
    tif = generate("micronet", tmp_path / "tif", image_format="tif", **kw)
    pairs = zip(sorted(png.rglob("*.png")), sorted(tif.rglob("*.tif")), strict=True)
    for a, b in pairs:
        assert a.relative_to(png).with_suffix("") == b.relative_to(tif).with_suffix("")
        assert np.array_equal(read_pixels(str(a)), read_pixels(str(b)))
    assert len(load_image_folder(tif).splits["train"]) == 4
    with pytest.raises(UserError, match="did you mean 'png'"):
        generate("micronet", tmp_path / "x", image_format="jpg")
    with pytest.raises(UserError, match="micronet only"):
        generate("ebc", tmp_path / "y", image_format="tif")


def test_micronet_rejects_test_split_options(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="train and val splits only"):
        generate("micronet", tmp_path / "x", n_test=2)


def test_refuses_a_foreign_folder_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"not empty and not a synth output; .*--overwrite"):
        generate("ebc", out, n_train=1, n_val=1, n_test=1, size=SIZE)
    generate("ebc", out, n_train=1, n_val=1, n_test=1, size=SIZE, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "train/train_000.tif").exists()


def test_refuses_another_kind_but_regenerates_the_same_kind(tmp_path: Path) -> None:
    out = generate("ebc", tmp_path / "o", n_train=3, n_val=1, n_test=1, size=SIZE)
    with pytest.raises(UserError, match="synth 'ebc' output"):
        generate("superalloy", out, size=SIZE)
    generate("ebc", out, n_train=1, n_val=1, n_test=1, size=SIZE, seed=1)
    assert sorted(p.name for p in (out / "train").iterdir()) == ["train_000.tif"]  # no stale
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize(("kind", "classes"), [("superalloy", 3), ("ebc", 2)])
def test_readers_load_the_output_with_the_presets(kind: str, classes: int, request) -> None:
    dataset = pytest.importorskip("trainables.data.dataset")
    spec_mod = pytest.importorskip("trainables.data.spec")
    out = request.getfixturevalue(f"{kind}_out")
    data = dataset.load_dataset(spec_mod.load_data_spec(out / "data.yaml"))
    assert len(data.classes) == classes
    assert len(data.splits["train"].images) == 3
    assert data.splits["train"].images[0].shape == (SIZE, SIZE, 3)
    masks = np.stack(data.splits["train"].masks)
    assert (masks == 1).mean() > 0.03  # secondary / oxide present after the class map


def test_an_interrupted_run_is_marked_incomplete_and_cleaned_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainables.data.synth import ebc

    real_render, calls = ebc.render, []

    def failing_render(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)

    monkeypatch.setattr(ebc, "render", failing_render)
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        generate("ebc", out, n_train=4, n_val=1, n_test=1, size=SIZE)
    assert json.loads((out / "synth.json").read_text())["complete"] is False
    assert not (out / "data.yaml").exists()
    monkeypatch.setattr(ebc, "render", real_render)
    generate("ebc", out, n_train=1, n_val=1, n_test=1, size=SIZE)
    assert len(list((out / "train").iterdir())) == 1
    assert json.loads((out / "synth.json").read_text())["complete"] is True
