"""BatchNorm folding: the folded smp model computes what the unfolded one does, without BN."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from tests.package_factory import make_package
from trainables.inference import fold_batchnorm
from trainables.models import create_model
from trainables.package import load_model


def trained_like(decoder: str, encoder: str) -> nn.Module:
    """A real smp model whose BatchNorms hold non-trivial statistics, as after training."""
    torch.manual_seed(0)
    model = create_model(decoder=decoder, encoder=encoder, num_classes=3).eval()
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.2, 0.2)
    return model


def batchnorms(model: nn.Module) -> int:
    return sum(type(m) is nn.BatchNorm2d for m in model.modules())


# Unet traces whole; FPN does not (smp's input-shape check branches on the shape), so its
# encoder and decoder are folded one by one
@pytest.mark.parametrize("decoder", ["Unet", "FPN"])
def test_folded_model_gives_the_unfolded_output_without_any_batchnorm(decoder):
    model = trained_like(decoder, "resnet18")
    folded = fold_batchnorm(copy.deepcopy(model))
    assert batchnorms(model) >= 20 and batchnorms(folded) == 0
    assert type(folded) is type(model) and folded.encoder.output_stride == 32
    assert not any("running_mean" in key for key in folded.state_dict())
    x = torch.randn(2, 3, 64, 96)  # another size than any trace: the model's own forward runs
    with torch.inference_mode():
        want, got = model(x), folded(x)
    assert (want - got).abs().max() <= 1e-4 * want.abs().max()


def test_folding_a_model_in_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(create_model(decoder="Unet", encoder="resnet18", num_classes=2))


def test_load_model_optimises_by_default_and_agrees_with_the_plain_model(tmp_path):
    pkg = make_package(tmp_path / "m")
    fast = load_model(pkg, device="cpu", precision="fp32")
    plain = load_model(pkg, device="cpu", precision="fp32", optimise=False)
    assert batchnorms(fast.models[0]) == 0 and batchnorms(plain.models[0]) > 0
    assert fast.runtime.channels_last and not plain.runtime.channels_last
    img = np.random.default_rng(0).integers(0, 256, (96, 80, 3), dtype=np.uint8)
    a, b = fast.probabilities(img)[0], plain.probabilities(img)[0]
    assert (a - b).abs().max() < 1e-4
    assert (fast.predict(img) == plain.predict(img)).mean() > 0.999
