"""Image reading: any depth and channel count to HxWx3 uint8, with a note of what was done."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.data_factory import write
from trainables.data.io import ImageProblem, read_image, read_mask


def ramp(dtype, scale: float) -> np.ndarray:
    return (np.arange(32 * 32).reshape(32, 32) * scale).astype(dtype)


@pytest.mark.parametrize(
    ("name", "arr", "note"),
    [
        ("g8.png", ramp(np.uint8, 0.2), "8-bit grey, replicated to 3 channels"),
        ("rgb.png", np.stack([ramp(np.uint8, 0.2)] * 3, -1), "8-bit RGB"),
        ("rgba.tif", np.dstack([ramp(np.uint8, 0.2)] * 4), "8-bit RGBA, alpha dropped"),
        (
            "la.png",
            np.dstack([ramp(np.uint8, 0.2)] * 2),
            "8-bit grey+alpha, alpha dropped, replicated to 3 channels",
        ),
        (
            "g16.tif",
            ramp(np.uint16, 60.0),
            "16-bit grey, scaled by its 0.1-99.9 percentiles to uint8, replicated to 3 channels",
        ),
        (
            "f32.tif",
            ramp(np.float32, 0.001),
            "32-bit float grey, scaled by its 0.1-99.9 percentiles to uint8, "
            "replicated to 3 channels",
        ),
    ],
)
def test_conversion_to_rgb_uint8_states_what_was_done(tmp_path, name, arr, note):
    image, got = read_image(write(tmp_path / name, arr))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert got == note
    assert image.min() == 0 if arr.dtype != np.uint8 else True
    assert image.max() >= 200


def test_16bit_scaling_keeps_the_order_of_values(tmp_path):
    image, _ = read_image(write(tmp_path / "g16.tif", ramp(np.uint16, 60.0)))
    row = image[..., 0].ravel().astype(int)
    assert (np.diff(row) >= 0).all() and row[0] == 0 and row[-1] == 255


@pytest.mark.parametrize("planar", ["contig", "separate"])
def test_five_channel_tiff_uses_the_first_three(tmp_path, planar):
    arr = np.dstack([ramp(np.uint8, 0.2 * (c + 1)) for c in range(5)])
    data = arr if planar == "contig" else np.moveaxis(arr, -1, 0)
    path = tmp_path / "c5.tif"
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig=planar)
    image, note = read_image(path)
    assert note == "8-bit 5-channel, first 3 channels used"
    assert (image == arr[..., :3]).all()


def test_multipage_tiff_uses_the_first_page(tmp_path):
    path = tmp_path / "stack.tif"
    pages = np.stack([ramp(np.uint8, 0.2), ramp(np.uint8, 0.1)])
    with tifffile.TiffWriter(path) as tif:
        for page in pages:
            tif.write(page)
    image, note = read_image(path)
    assert note.endswith("first of 2 pages")
    assert (image[..., 0] == pages[0]).all()


def test_palette_png_mask_keeps_indices_or_gives_colours(tmp_path):
    img = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    path = tmp_path / "m.png"
    img.save(path)
    assert read_mask(path, colour=False).tolist() == [[0, 1], [2, 1]]
    assert read_mask(path, colour=True)[1, 0, :3].tolist() == [0, 0, 255]


def test_float_mask_is_refused(tmp_path):
    with pytest.raises(ImageProblem, match="mask has float values"):
        read_mask(write(tmp_path / "m.tif", ramp(np.float32, 0.1)), colour=False)


def test_jpeg_truncated_is_reported_not_raised_as_oserror(tmp_path):
    path = write(tmp_path / "a.jpg", np.stack([ramp(np.uint8, 0.2)] * 3, -1))
    path.write_bytes(path.read_bytes()[:120])
    with pytest.raises(ImageProblem, match="unreadable or truncated image"):
        read_image(path)
