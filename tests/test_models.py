"""The model factory: every smp decoder builds and runs; bad names and pairs are explained."""

from __future__ import annotations

import pytest
import torch

from core.errors import UserError
from trainables.models import (
    check_feasible,
    create_model,
    encoder_state_dict,
    get_decoder,
    list_decoders,
    list_encoders,
    validate_encoder,
)

TINY = "tu-test_resnet"  # timm's smallest CNN: every decoder accepts it


@pytest.mark.parametrize("decoder", list_decoders())
def test_every_decoder_builds_and_forwards(decoder: str) -> None:
    torch.manual_seed(0)
    model = create_model(decoder=decoder, encoder=TINY, num_classes=3).eval()
    reason = check_feasible(decoder, TINY, size=64)
    with torch.no_grad():
        if reason is not None:  # the probe's verdict must match a real forward
            with pytest.raises(RuntimeError):
                model(torch.rand(1, 3, 64, 64))
        size = 64 if reason is None else 128
        out = model(torch.rand(1, 3, size, size))
    assert out.shape == (1, 3, size, size)
    assert torch.isfinite(out).all()


def test_small_inputs_are_infeasible_for_pan_only() -> None:
    too_small = [d for d in list_decoders() if check_feasible(d, TINY, size=64)]
    assert too_small == ["PAN"]


def test_registry_is_smps_own() -> None:
    assert {"Unet", "UnetPlusPlus", "Linknet", "FPN", "PSPNet", "PAN", "DeepLabV3Plus"} <= set(
        list_decoders()
    )
    assert "resnet18" in list_encoders()
    assert get_decoder("deeplabv3plus").__name__ == "DeepLabV3Plus"
    assert validate_encoder("tu-resnet18") == "tu-resnet18"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: get_decoder("Unett"), "did you mean 'Unet'"),
        (lambda: validate_encoder("resnet81"), "did you mean 'resnet18'"),
        (lambda: validate_encoder("tu-resnet81"), "did you mean 'tu-resnet18'"),
    ],
)
def test_unknown_names_get_the_nearest_match(call, expected: str) -> None:
    with pytest.raises(UserError, match=expected) as err:
        call()
    assert "\n" not in str(err.value)


def test_a_typo_is_not_reported_as_infeasible() -> None:
    with pytest.raises(UserError, match="did you mean"):
        check_feasible("Unet", "resnet81")


def test_encoder_without_dilation_is_infeasible_under_deeplabv3plus() -> None:
    reason = check_feasible("DeepLabV3Plus", "vgg11_bn")
    assert reason is not None and "dilated mode" in reason
    assert check_feasible("Unet", "vgg11_bn") is None
    with pytest.raises(UserError, match="infeasible: 'VGG' models do not support dilated mode"):
        create_model(decoder="DeepLabV3Plus", encoder="vgg11_bn", num_classes=2)


def test_feasibility_agrees_with_building_for_real() -> None:
    # the meta-device probe must not miss what a real build refuses
    assert check_feasible("DPT", "resnet18") is not None
    with pytest.raises(ValueError):
        get_decoder("DPT")(encoder_name="resnet18", encoder_weights=None)
    assert check_feasible("Unet", "resnet18") is None


def test_encoder_state_dict_is_a_detached_copy() -> None:
    model = create_model(decoder="Unet", encoder=TINY, num_classes=2)
    state = encoder_state_dict(model)
    assert state.keys() == model.encoder.state_dict().keys()
    key = next(k for k in state if k.endswith("weight"))
    state[key].add_(1.0)
    assert not torch.equal(state[key], model.encoder.state_dict()[key])


def test_num_classes_must_be_positive() -> None:
    with pytest.raises(UserError, match="num_classes must be >= 1"):
        create_model(decoder="Unet", encoder=TINY, num_classes=0)
