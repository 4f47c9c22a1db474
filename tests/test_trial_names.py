"""Trial folder names: readable, unique, and a templated init names the trial's own entry."""

from __future__ import annotations

from types import SimpleNamespace

from search.tuner import trial_label


def test_trial_label_names_decoder_encoder_init_seed_and_ray_id() -> None:
    trial = SimpleNamespace(
        config={"decoder": "Unet", "encoder": "resnet18", "init": "imagenet", "seed": 2},
        trial_id="3f2a1_00004",
    )
    assert trial_label(trial) == "Unet-resnet18-imagenet-s2_3f2a1_00004"


def test_a_templated_zoo_init_is_filled_with_the_trials_encoder() -> None:
    trial = SimpleNamespace(
        config={"decoder": "FPN", "encoder": "mobilenet_v2", "init": "zoo:mn-{encoder}"},
        trial_id="6295d_00006",
    )
    assert trial_label(trial) == "FPN-mobilenet_v2-zoo_mn-mobilenet_v2-s0_6295d_00006"
