"""How close a colourisation is to the true photo: plain functions on float RGB arrays in [0, 1], HxWx3."""

import numpy as np
from skimage.color import deltaE_ciede2000
from skimage.metrics import structural_similarity

from colorize_cli.colour import rgb_to_lab
from colorize_cli.report import psnr_of_mse, rgb_mse

SSIM_WINDOW = 7  # skimage's default; smaller for images under 7 px a side


def mse(predicted: np.ndarray, truth: np.ndarray) -> float:
    """The design's error: MSE of RGB on a 0..1 scale."""
    return rgb_mse(predicted, truth)


def psnr(predicted: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of RGB on a 0..1 scale."""
    return psnr_of_mse(rgb_mse(predicted, truth))


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


def colourfulness(rgb: np.ndarray) -> float:
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
        "colourfulness": colourfulness(predicted),
    }
