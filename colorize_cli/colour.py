"""CIE LAB conversion, the network-boundary scaling, and joining predicted a, b with the original L.

The scaling lives here only: L (0..100) -> L / 50 - 1 and a, b (about -110..110) -> a, b / 110,
so both are about [-1, 1] at the network's input and output.
"""

import numpy as np
from skimage import color

L_HALF = 50.0
AB_SCALE = 110.0
GREY_CHROMA = 1.0  # mean LAB chroma below which an image counts as grey (no ground truth)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1], HxWx3 -> float32 LAB."""
    return color.rgb2lab(np.asarray(rgb, dtype=np.float32)).astype(np.float32, copy=False)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Float LAB, HxWx3 -> float32 RGB clipped to [0, 1]."""
    rgb = color.lab2rgb(np.asarray(lab, dtype=np.float32))
    return np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> the L channel of LAB, float32 HxW."""
    return rgb_to_lab(rgb)[..., 0]


def grey_to_l(grey: np.ndarray) -> np.ndarray:
    """Grey values in [0, 1] (HxW) -> L, exactly as for an RGB image with r = g = b."""
    return rgb_to_l(np.repeat(np.asarray(grey, dtype=np.float32)[..., None], 3, axis=2))


def join_l_ab(l: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Original-resolution L (HxW) and a, b (HxWx2) -> RGB in [0, 1]."""
    return lab_to_rgb(np.concatenate([l[..., None], ab], axis=2))


def mean_chroma(lab: np.ndarray) -> float:
    """Mean LAB chroma sqrt(a^2 + b^2); near 0 for grey images."""
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def scale_l(l):
    """L (0..100) -> network input (about [-1, 1]); works on arrays and tensors."""
    return l / L_HALF - 1.0


def scale_ab(ab):
    """a, b -> network target scale (about [-1, 1])."""
    return ab / AB_SCALE


def unscale_ab(ab_scaled):
    """Network output -> a, b in LAB units."""
    return ab_scaled * AB_SCALE
