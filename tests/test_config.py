"""Trial config validation: unknown keys and bad values get one clear line."""

import dataclasses

import pytest

from core.errors import UserError
from trainables.config import SegmentationConfig


def test_defaults_are_the_paper_protocol():
    cfg = SegmentationConfig.from_dict({})
    assert (cfg.bce_weight, cfg.lr, cfg.lr_final) == (0.7, 2e-4, 1e-5)
    assert cfg.decoder == "Unet" and cfg.init == "none"


def test_unknown_key_names_the_nearest_valid_key():
    with pytest.raises(
        UserError, match="unknown trial config key `bce_wieght`; did you mean `bce_weight`"
    ):
        SegmentationConfig.from_dict({"bce_wieght": 0.5})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"lr": -1}, r"`lr` must be > 0, but got -1.0"),
        ({"bce_weight": 1.5}, r"`bce_weight` must be in \[0.0, 1.0\], but got 1.5"),
        ({"batch_size": 2.5}, r"`batch_size` must be an integer, but got 2.5"),
        ({"max_epochs": True}, r"`max_epochs` must be an integer, but got True"),
        ({"crop": 100}, r"`crop` must be a multiple of 32, but got 100"),
        ({"batch_size": 8, "samples_per_epoch": 4}, r"`samples_per_epoch` must be >= `batch_size`"),
        (
            {"eval_tile": 256, "eval_overlap": 128},
            r"`eval_overlap` must be in \[0, eval_tile / 2\)",
        ),
        (
            {"precision": "bf61"},
            r"`precision` must be one of auto, fp32, bf16, fp16, but got 'bf61'; did you mean",
        ),
        (
            {"augment": "superaloy"},
            r"`augment` must be one of .*, but got 'superaloy'; did you mean 'superalloy'",
        ),
        ({"encoder": 18}, r"`encoder` must be a string, but got 18"),
    ],
)
def test_bad_values_are_refused_with_the_key_and_the_value(config, message):
    with pytest.raises(UserError, match=message):
        SegmentationConfig.from_dict(config)


def test_yaml_and_ray_values_are_coerced():
    cfg = SegmentationConfig.from_dict({"lr": 1, "channels_last": True, "zoo_dir": None})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.channels_last == "true"


def test_config_is_frozen_and_round_trips():
    cfg = SegmentationConfig.from_dict({"encoder": "resnet34", "seed": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 4  # type: ignore[misc]
    assert SegmentationConfig.from_dict(cfg.to_dict()) == cfg
