"""Class maps: presets, explicit maps, one-line errors, vectorised encoding."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import UserError
from trainables.data.classmaps import get_class_map, list_class_maps


@pytest.mark.parametrize("name", list_class_maps())
def test_every_preset_builds_and_encodes_an_empty_mask(name):
    cmap = get_class_map(name)
    assert cmap.name == name and len(cmap.classes) >= 2
    mask = np.zeros((4, 4, 4) if cmap.colour else (4, 4), np.uint8)
    out, n_bad, _ = cmap.encode(mask)
    assert out.shape == (4, 4) and out.dtype == np.uint8 and n_bad == 0


def test_superalloy_only_pure_blue_and_red_are_precipitates():
    cmap = get_class_map("superalloy")
    mask = np.array(
        [[[0, 0, 255, 255], [255, 0, 0, 255], [0, 0, 254, 255], [90, 90, 90, 255]]], np.uint8
    )
    out, n_bad, _ = cmap.encode(mask)
    assert cmap.classes == ("matrix", "secondary", "tertiary")
    assert out.tolist() == [[1, 2, 0, 0]] and n_bad == 0


def test_ebc_counts_cracks_as_background_and_flags_other_values():
    cmap = get_class_map("ebc")
    out, n_bad, examples = cmap.encode(np.array([[0, 1, 2, 9, 9, 4]], np.uint8))
    assert cmap.classes == ("background", "oxide")
    assert out.tolist() == [[0, 1, 0, 0, 0, 0]]
    assert n_bad == 3 and examples == [9, 4]


def test_explicit_map_puts_the_rest_class_first():
    cmap = get_class_map({"oxide": 1, "background": "rest"})
    assert cmap.classes == ("background", "oxide") and cmap.rest
    out, n_bad, _ = cmap.encode(np.array([[5, 1, 0]], np.uint8))
    assert out.tolist() == [[0, 1, 0]] and n_bad == 0


def test_explicit_colour_map_accepts_grey_masks_as_grey_colours():
    cmap = get_class_map({"matrix": {"rest": True}, "bright": [200, 200, 200]})
    out, _, _ = cmap.encode(np.array([[200, 10]], np.uint8))
    assert out.tolist() == [[1, 0]]


def test_index_map_refuses_a_colour_mask():
    mask = np.zeros((2, 2, 3), np.uint8)
    mask[0, 0] = (255, 0, 0)
    with pytest.raises(UserError, match="colour mask, but the class map lists index values"):
        get_class_map("ebc").encode(mask)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a": 1}, "needs at least two classes"),
        ({"a": "rest", "b": "rest"}, "only one class may be `rest`"),
        ({"a": 1, "b": 1}, "value [1] is given to both 'a' and 'b'"),
        ({"a": 1, "b": [0, 0, 255]}, "mixes index values and RGB triples"),
        ({"a": "rest", "b": [0, 300, 0]}, "`data.classes.b` must be an index or an RGB triple"),
        ({"a": "rest", "b": [0, 2]}, "several values: {values: [0, 2]}"),
        ({"a": "rest", "b": {"value": 1}}, "unknown key(s) ['value']"),
        ({"a": "rest", "b": "blue"}, "must be an index, [r, g, b], `rest` or a mapping"),
        ({"a": "rest", "b": {}}, "`data.classes.b` lists no values"),
        (42, "must be a preset name"),
    ],
)
def test_bad_explicit_maps_are_one_line_errors(spec, message):
    with pytest.raises(UserError) as err:
        get_class_map(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_encoding_a_1024_overlay_maps_every_pixel():
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 256, (1024, 1024, 4), dtype=np.uint8)
    mask[:512, :, :3] = (0, 0, 255)
    mask[512:, :8, :3] = (255, 0, 0)
    out, _, _ = get_class_map("superalloy").encode(mask)
    assert (out[:512] == 1).all() and (out[512:, :8] == 2).all()
    assert np.bincount(out.ravel()).tolist()[1:] == [512 * 1024, 512 * 8]
