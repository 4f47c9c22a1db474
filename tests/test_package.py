"""The model package: round trip, damaged tensors named in one line, ensembles, flips."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from core.errors import UserError
from tests.package_factory import fresh_model, make_package
from trainables.package import META_FILE, WEIGHTS_FILE, load_model
from trainables.runtime import Runtime
from trainables.tiling import predict_logits

CPU = Runtime(device=torch.device("cpu"))


def image(seed: int = 0, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def logits(model, img, tile=64):
    return predict_logits(model, img, num_classes=3, runtime=CPU, tile=tile, overlap=16)


def test_round_trip_gives_the_masks_of_the_model_it_was_made_from(tmp_path):
    pkg = make_package(tmp_path / "m", seeds=(3,))
    model = load_model(pkg, device="cpu", precision="fp32")
    img = image()
    expected = logits(fresh_model(3), img).argmax(0).numpy()
    assert np.array_equal(model.predict(img), expected)
    meta = json.loads((pkg / META_FILE).read_text())
    assert meta["num_members"] == 1 and torch.__version__.startswith(meta["versions"]["torch"])
    assert "microsweep predict" in (pkg / "README.txt").read_text()


def test_grey_16_bit_input_is_converted_like_the_data_layer(tmp_path):
    model = load_model(make_package(tmp_path / "m"), device="cpu")
    grey16 = image()[..., 0].astype(np.uint16) * 257
    assert model.predict(grey16).shape == (96, 96)


def _rewrite(pkg, change):
    tensors = load_file(str(pkg / WEIGHTS_FILE))
    change(tensors)
    save_file(tensors, str(pkg / WEIGHTS_FILE))


def test_a_missing_tensor_is_one_line_naming_it(tmp_path):
    pkg = make_package(tmp_path / "m")
    key = "member0.decoder.blocks.0.conv1.0.weight"
    _rewrite(pkg, lambda t: t.pop(key))
    with pytest.raises(UserError, match=f"tensor '{key}' is missing") as err:
        load_model(pkg, device="cpu")
    assert "\n" not in str(err.value)


def test_a_tensor_of_the_wrong_shape_is_named_with_both_shapes(tmp_path):
    pkg = make_package(tmp_path / "m")
    key = "member0.segmentation_head.0.weight"
    _rewrite(pkg, lambda t: t.__setitem__(key, torch.zeros(5, 16, 3, 3)))
    with pytest.raises(UserError, match=rf"'{key}' has shape \(5, 16, 3, 3\).*needs \(3, 16"):
        load_model(pkg, device="cpu")


def test_an_extra_tensor_and_a_foreign_folder_are_refused(tmp_path):
    pkg = make_package(tmp_path / "m")
    _rewrite(pkg, lambda t: t.__setitem__("member1.extra", torch.zeros(1)))
    with pytest.raises(UserError, match=r"unexpected tensor 'member1\.extra'"):
        load_model(pkg, device="cpu")
    with pytest.raises(UserError, match="not a model package"):
        load_model(tmp_path, device="cpu")


def test_an_ensemble_averages_member_probabilities_and_keeps_each_members_mask(tmp_path):
    pkg = make_package(tmp_path / "m", seeds=(0, 1))
    model = load_model(pkg, device="cpu", precision="fp32")
    img = image(5)
    probs = [torch.softmax(logits(fresh_model(s), img), 0) for s in (0, 1)]
    pred = model.predict_all(img)
    assert np.array_equal(pred.mask, ((probs[0] + probs[1]) / 2).argmax(0).numpy())
    for member, p in zip(pred.member_masks, probs, strict=True):
        assert np.array_equal(member, p.argmax(0).numpy())
    assert not np.array_equal(pred.member_masks[0], pred.member_masks[1])


def test_flip_tta_commutes_with_flipping_the_image(tmp_path):
    model = load_model(make_package(tmp_path / "m"), device="cpu", precision="fp32")
    img = image(7, size=64)
    plain = model.predict(img, tta=True)
    flipped = model.predict(np.ascontiguousarray(img[:, ::-1]), tta=True)[:, ::-1]
    assert (plain == flipped).mean() > 0.999
    assert (plain != model.predict(img)).any()  # the flips did change something
