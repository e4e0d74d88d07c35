"""LAB conversion, scaling and the full-resolution recombination, against known numbers."""

import numpy as np
import pytest
from skimage import color, data

from colorize_cli.color import (AB_SCALE, join_l_ab, l_of_pixels, lab_to_rgb, mean_chroma, rgb_to_lab, scale_ab,
                                 scale_l, unscale_ab)


@pytest.mark.parametrize("rgb, lab", [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
])
def test_rgb_to_lab_matches_reference_values(rgb, lab):
    out = rgb_to_lab(np.array([[rgb]], np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], lab, atol=0.05)


def test_lab_round_trip_on_a_photo():
    rgb = data.astronaut()[::8, ::8].astype(np.float32) / 255
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-3)


def test_scaling_maps_lab_ranges_to_about_minus_one_one():
    assert scale_l(0.0) == -1.0 and scale_l(100.0) == 1.0
    assert unscale_ab(scale_ab(37.5)) == pytest.approx(37.5)
    assert abs(scale_ab(AB_SCALE)) == 1.0


def test_grey_l_equals_the_l_of_equal_rgb():
    grey = np.linspace(0, 1, 50, dtype=np.float32).reshape(5, 10)
    codes = np.round(grey * 255).astype(np.uint8)
    np.testing.assert_allclose(l_of_pixels(codes), l_of_pixels(np.dstack([codes] * 3)), atol=1e-4)
    assert mean_chroma(rgb_to_lab(np.dstack([grey] * 3))) < 0.01


def test_join_keeps_the_original_l_and_size():
    rgb = data.coffee()[::4, ::4].astype(np.float32) / 255
    l = rgb_to_lab(rgb)[..., 0]
    ab = np.full(l.shape + (2,), 5.0, np.float32)
    out = join_l_ab(l, ab)
    assert out.shape == rgb.shape
    in_gamut = (l > 25) & (l < 85)  # far from black and white, a small a, b cannot be clipped
    np.testing.assert_allclose(color.rgb2lab(out)[..., 0][in_gamut], l[in_gamut], atol=0.05)
    np.testing.assert_allclose(color.rgb2lab(out)[..., 1:][in_gamut], 5.0, atol=0.05)
