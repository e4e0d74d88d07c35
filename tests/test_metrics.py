"""The evaluation metrics against values worked out by hand on tiny arrays."""

import math

import numpy as np
import pytest

from colorize_cli import metrics


def flat(rgb, size=(8, 8)) -> np.ndarray:
    return np.broadcast_to(np.asarray(rgb, np.float32), (*size, 3)).copy()


def test_mse_and_psnr_of_a_uniform_error():
    truth, predicted = flat([0.5, 0.5, 0.5]), flat([0.6, 0.6, 0.6])
    assert metrics.mse(predicted, truth) == pytest.approx(0.01, rel=1e-5)
    assert metrics.psnr(predicted, truth) == pytest.approx(20.0, abs=1e-4)


def test_psnr_of_an_error_in_one_channel():
    truth, predicted = flat([0.2, 0.2, 0.2]), flat([0.2, 0.5, 0.2])  # mse = 0.3^2 / 3 = 0.03
    assert metrics.psnr(predicted, truth) == pytest.approx(10 * math.log10(1 / 0.03), abs=1e-4)


def test_colourfulness_of_grey_is_zero():
    assert metrics.colorfulness(flat([0.4, 0.4, 0.4])) == pytest.approx(0.0, abs=1e-9)
    ramp = np.repeat(np.linspace(0, 1, 16, dtype=np.float32)[:, None, None], 3, axis=2)
    assert metrics.colorfulness(np.repeat(ramp, 4, axis=1)) == pytest.approx(0.0, abs=1e-4)


def test_colourfulness_of_one_flat_colour_is_the_mean_term():
    # pure red at 255: rg = 255, yb = 127.5, no spread
    assert metrics.colorfulness(flat([1.0, 0.0, 0.0])) == pytest.approx(0.3 * math.hypot(255, 127.5))


def test_colourfulness_of_half_red_half_blue():
    image = np.zeros((4, 6, 3), np.float32)
    image[:, :3, 0] = 1.0  # red: rg = 255, yb = 127.5
    image[:, 3:, 2] = 1.0  # blue: rg = 0, yb = -255
    mean_rg, mean_yb = 127.5, (127.5 - 255) / 2
    std_rg, std_yb = 127.5, (127.5 + 255) / 2
    expected = math.sqrt(std_rg**2 + std_yb**2) + 0.3 * math.sqrt(mean_rg**2 + mean_yb**2)
    assert metrics.colorfulness(image) == pytest.approx(expected)


def test_ssim_of_identical_images_is_one_and_less_otherwise():
    rng = np.random.default_rng(0)
    image = rng.random((16, 16, 3), dtype=np.float32)
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.ssim(np.clip(image + rng.normal(0, 0.2, image.shape), 0, 1), image) < 0.9


def test_ssim_window_shrinks_for_tiny_images():
    image = np.random.default_rng(1).random((5, 4, 3))
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="too small"):
        metrics.ssim(image[:2], image[:2])


def test_ciede2000_identical_is_zero_and_black_to_white_is_100():
    image = np.random.default_rng(2).random((6, 6, 3), dtype=np.float32)
    assert metrics.ciede2000(image, image) == pytest.approx(0.0, abs=1e-6)
    # a pure lightness step around L = 50 has S_L = 1, so dE00 = dL = 100
    assert metrics.ciede2000(flat([1, 1, 1]), flat([0, 0, 0])) == pytest.approx(100.0, abs=0.05)


def test_compare_gives_every_metric():
    truth, predicted = flat([0.5, 0.5, 0.5]), flat([0.6, 0.6, 0.6])
    scores = metrics.compare(predicted, truth)
    assert set(scores) == {"mse", "psnr", "ssim", "ciede2000", "colourfulness"}
    assert scores["psnr"] == pytest.approx(20.0, abs=1e-4)
    assert scores["colourfulness"] == pytest.approx(0.0, abs=1e-4)
