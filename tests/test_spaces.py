import numpy as np
import pytest
import segmentation_models_pytorch as smp
from ray.tune.search.sample import Categorical, Float, Integer

from search.experiment import load_experiment
from search.tune_space import sample, to_tune
from spaces.dimensions import (
    Distribution,
    Fixed,
    Grid,
    SpaceError,
    parse_dimension,
)
from spaces.presets import list_presets, preset_path


def test_value_list_and_distribution_are_told_apart():
    assert parse_dimension("lr", 1e-3) == Fixed(1e-3)
    assert parse_dimension("encoder", ["a", "b"]) == Grid(("a", "b"))
    assert parse_dimension("lr", {"loguniform": [1e-5, 1e-3]}) == Distribution(
        "loguniform", (1e-5, 1e-3)
    )


@pytest.mark.parametrize(
    ("raw", "kind", "check"),
    [
        ({"uniform": [0.3, 0.9]}, Float, lambda d: (d.lower, d.upper) == (0.3, 0.9)),
        ({"loguniform": [1e-5, 1e-3]}, Float, lambda d: "LogUniform" in type(d.sampler).__name__),
        ({"quniform": [0.1, 0.9, 0.1]}, Float, lambda d: d.sampler.q == 0.1),
        ({"randint": [1, 5]}, Integer, lambda d: (d.lower, d.upper) == (1, 5)),
        ({"choice": [8, 16]}, Categorical, lambda d: d.categories == [8, 16]),
        (["Unet", "FPN"], Categorical, lambda d: d.categories == ["Unet", "FPN"]),
    ],
)
def test_dimensions_map_onto_ray_tune_domains(raw, kind, check):
    domain = to_tune(parse_dimension("k", raw))
    assert isinstance(domain, kind)
    assert check(domain)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"uniform": [0.9, 0.3]}, "space.k.uniform: low must be < high, but got 0.9 >= 0.3"),
        ({"unifrom": [0.3, 0.9]}, "did you mean 'uniform'?"),
        ({"quniform": [0.1, 0.9]}, "must be [low, high, q]"),
        ({"randint": [1.5, 4]}, "takes integers"),
        ({"uniform": ["a", "b"]}, "takes numbers"),
        ([], "non-empty list"),
        (["a", "a"], "lists a value twice"),
        ({"uniform": [0, 1], "choice": [1]}, "one distribution"),
    ],
)
def test_malformed_dimensions_name_the_key(raw, message):
    with pytest.raises(SpaceError) as err:
        parse_dimension("k", raw)
    assert message in str(err.value)


def test_sampling_is_seeded_and_in_range():
    dim = parse_dimension("k", {"loguniform": [1e-5, 1e-3]})
    a = sample(dim, 5, np.random.default_rng(3))
    b = sample(dim, 5, np.random.default_rng(3))
    assert a == b and all(1e-5 <= v <= 1e-3 for v in a)
    assert all(type(v) is float for v in a)  # plain Python values for configs and Parquet


def test_presets_are_listed_and_parse(tmp_path):
    assert {"demo", "paper", "new-material"} <= set(list_presets())
    for name in list_presets():
        exp = load_experiment(preset_path(name), overrides=[f"data.root={tmp_path}"])
        assert exp.name == name


def test_paper_preset_is_the_studys_space():
    exp = load_experiment(preset_path("paper"))
    encoders = exp.space["encoder"].values
    assert len(encoders) == 36 and len(set(encoders)) == 36
    assert set(encoders) <= set(smp.encoders.get_encoder_names())
    assert exp.space["decoder"].values == (
        "Unet", "UnetPlusPlus", "Linknet", "FPN", "PSPNet", "PAN", "DeepLabV3Plus",
    )  # fmt: skip
    assert exp.space["init"].values == ("none", "imagenet", "micronet", "image-micronet")


def test_unknown_preset_suggests_the_nearest():
    with pytest.raises(ValueError, match="did you mean 'paper'"):
        preset_path("papr")
