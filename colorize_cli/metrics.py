"""How close a colourisation is to the true photo: plain functions on RGB arrays, HxWx3 (float on a 0..1
scale, except pixels_mse on integer pixels)."""

import math

import numpy as np
from skimage.color import deltaE_ciede2000
from skimage.metrics import structural_similarity

from colorize_cli.color import bits_of, rgb_to_lab

SSIM_WINDOW = 7  # skimage's default; smaller for images under 7 px a side


def mse(predicted: np.ndarray, truth: np.ndarray) -> float:
    """The design's error: MSE between true and predicted RGB, both on a 0..1 scale."""
    return float(np.mean((np.asarray(predicted, np.float32) - np.asarray(truth, np.float32)) ** 2))


def pixels_mse(predicted: np.ndarray, truth: np.ndarray, rows: int = 64) -> float:
    """mse of two integer images (uint8 or uint16, each on its own scale), in bands of `rows` rows.

    Differences are taken in float32 on the truth's scale (exact integers for two images of one depth),
    squared and summed by a dot product per band, and scaled to 0..1 once at the end.
    """
    top_p, top_t = ((1 << bits_of(a)) - 1 for a in (predicted, truth))
    total = 0.0
    for y0 in range(0, truth.shape[0], rows):
        p, t = predicted[y0 : y0 + rows], truth[y0 : y0 + rows]
        diff = np.subtract(p, t, dtype=np.float32) if top_p == top_t else p * np.float32(top_t / top_p) - t
        diff = diff.ravel()
        total += float(np.dot(diff, diff))
    return total / truth.size / top_t**2


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB for values on a 0..1 scale, capped at 100 dB for a perfect match."""
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def psnr(predicted: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of RGB on a 0..1 scale."""
    return psnr_of_mse(mse(predicted, truth))


def ssim(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean structural similarity over the three channels (1 for identical images)."""
    side = min(truth.shape[:2])
    if side < 3:
        raise ValueError(f"{truth.shape[1]}x{truth.shape[0]} is too small for SSIM (3 px a side at least)")
    window = min(SSIM_WINDOW, side if side % 2 else side - 1)
    return float(structural_similarity(np.asarray(truth, np.float64), np.asarray(predicted, np.float64),
                                       channel_axis=2, data_range=1.0, win_size=window))


def ciede2000(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference between the two images in LAB (0 for identical images)."""
    return float(deltaE_ciede2000(rgb_to_lab(truth), rgb_to_lab(predicted)).mean())


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003) colourfulness of RGB scaled to 0..255 (0 for grey images)."""
    r, g, b = (np.asarray(rgb, np.float64) * 255.0).transpose(2, 0, 1)
    rg = r - g
    yb = (r + g) / 2 - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def compare(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Every metric of `predicted` against `truth`, and the colourfulness of `predicted`."""
    error = mse(predicted, truth)
    return {
        "mse": error,
        "psnr": psnr_of_mse(error),
        "ssim": ssim(predicted, truth),
        "ciede2000": ciede2000(predicted, truth),
        "colourfulness": colorfulness(predicted),
    }
