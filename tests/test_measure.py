"""Measurements of class masks against planted discs of known area, diameter and centre."""

import math

import numpy as np
import pytest

from analysis import measure as M

CLASSES = ["matrix", "secondary", "tertiary"]


def disc(mask: np.ndarray, cy: int, cx: int, r: float, value: int) -> int:
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    mask[inside] = value
    return int(inside.sum())


def planted():
    mask = np.zeros((128, 160), np.uint8)
    areas = [disc(mask, 30, 40, 12, 1), disc(mask, 90, 110, 20, 1), disc(mask, 100, 30, 4, 2)]
    return mask, areas


def test_particles_have_the_planted_areas_diameters_centres_and_round_shape():
    mask, areas = planted()
    rows = M.particle_rows(mask, CLASSES, image="a")
    secondary = sorted((r for r in rows if r[M.CLASS] == "secondary"), key=lambda r: r[M.AREA])
    assert [r[M.AREA_PX] for r in secondary] == sorted(areas[:2])
    small, large = secondary
    assert small[M.DIAMETER] == pytest.approx(2 * math.sqrt(areas[0] / math.pi))
    assert small[M.DIAMETER] == pytest.approx(24, rel=0.05)  # r = 12 px
    assert (small[M.CENTROID_Y], small[M.CENTROID_X]) == pytest.approx((30, 40))
    assert (large[M.CENTROID_Y], large[M.CENTROID_X]) == pytest.approx((90, 110))
    assert max(r[M.ECCENTRICITY] for r in rows) < 0.2  # discs
    assert [r[M.AREA_PX] for r in rows if r[M.CLASS] == "tertiary"] == [areas[2]]


def test_pixel_size_turns_sizes_into_physical_units():
    mask, areas = planted()
    rows = M.particle_rows(mask, CLASSES, image="a", scale=M.Scale(0.5, "um"))
    small = min((r for r in rows if r[M.CLASS] == "secondary"), key=lambda r: r[M.AREA])
    assert small[M.AREA] == pytest.approx(areas[0] * 0.25)
    assert small[M.DIAMETER] == pytest.approx(12, rel=0.05)
    assert small[M.CENTROID_X] == pytest.approx(20) and small[M.UNIT] == "um"


def test_an_elongated_particle_is_eccentric_and_touching_discs_are_one_particle():
    mask = np.zeros((64, 64), np.uint8)
    mask[30:34, 5:60] = 1
    disc(mask, 10, 10, 5, 2)
    disc(mask, 10, 20, 5, 2)  # overlaps the first: one connected component
    rows = M.particle_rows(mask, CLASSES, image="b")
    assert [r[M.ECCENTRICITY] > 0.95 for r in rows if r[M.CLASS] == "secondary"] == [True]
    assert len([r for r in rows if r[M.CLASS] == "tertiary"]) == 1


def test_phase_fractions_sum_to_one_and_carry_the_spread_of_ensemble_members():
    mask, areas = planted()
    other = mask.copy()
    other[:, :80] = 0
    rows = M.phase_rows(mask, CLASSES, image="a", members=[mask, other])
    assert sum(r[M.FRACTION] for r in rows) == pytest.approx(1)
    assert rows[1][M.PIXELS] == areas[0] + areas[1]
    f_other = (other == 1).mean()
    assert rows[1][M.MEMBER_STD] == pytest.approx(np.std([rows[1][M.FRACTION], f_other]))


def test_summary_gives_mean_std_across_images_and_size_quantiles():
    a, _ = planted()
    b = np.zeros_like(a)
    phases = M.phase_rows(a, CLASSES, image="a") + M.phase_rows(b, CLASSES, image="b")
    particles = M.particle_rows(a, CLASSES, image="a") + M.particle_rows(b, CLASSES, image="b")
    s = M.summarise(phases, particles, CLASSES)
    sec = s["classes"]["secondary"]
    fa = (a == 1).mean()
    assert s["images"] == 2
    assert sec["fraction_mean"] == pytest.approx(fa / 2)
    assert sec["fraction_std"] == pytest.approx(np.std([fa, 0], ddof=1))
    assert sec["particles"] == 2 and sec["diameter_quantiles"][2] == pytest.approx(
        np.median([r[M.DIAMETER] for r in particles if r[M.CLASS] == "secondary"])
    )
    assert "particles" not in s["classes"]["matrix"]
