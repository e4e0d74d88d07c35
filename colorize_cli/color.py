"""CIE LAB conversion, the network-boundary scaling, and joining predicted a, b with the original L.

The scaling lives here only: L (0..100) -> L / 50 - 1 and a, b (about -110..110) -> a, b / 110,
so both are about [-1, 1] at the network's input and output.
"""

import warnings

import numpy as np
import torch
from skimage import color as skimage_color
from skimage.color import colorconv

L_HALF = 50.0
AB_SCALE = 110.0
GREY_CHROMA = 1.0  # mean LAB chroma below which an image counts as grey (no ground truth)


# scikit-image's conversions on float RGB: the reference the fast paths below are tested against, and what
# the metrics measure in; colourisation itself goes through the fast paths only.
def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1], HxWx3 -> float32 LAB."""
    return skimage_color.rgb2lab(np.asarray(rgb, dtype=np.float32)).astype(np.float32, copy=False)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Float LAB, HxWx3 -> float32 RGB clipped to [0, 1]."""
    with warnings.catch_warnings():  # predicted colours may fall outside sRGB: clipping is intended
        warnings.simplefilter("ignore", UserWarning)
        rgb = skimage_color.lab2rgb(np.asarray(lab, dtype=np.float32))
    return np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False)


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


# Fast paths for full-resolution images: integer pixels in and out, float32 throughout, lookup tables
# for the sRGB transfer curve (the costly part of skimage's float64 conversion). They match
# skimage's rgb2lab / lab2rgb to well within one 8-bit step (tests/test_color.py).
_XYZ_FROM_RGB = colorconv.xyz_from_rgb.astype(np.float32)
_RGB_FROM_XYZ = colorconv.rgb_from_xyz.astype(np.float32)
_WHITE = np.asarray(colorconv.xyz_tristimulus_values(illuminant="D65", observer="2"), np.float32)
_ENCODE_STEPS = 1 << 16  # linear light is quantised this finely before the transfer-curve lookup
# CIE LAB's f() and the sRGB transfer curve as skimage computes them, for the numpy and the torch paths
_F_KNEE, _F_SLOPE, _F_OFFSET = 0.2068966, 7.787, 16.0 / 116.0  # f()'s inverse: cubic above f = 6/29, linear below
_SRGB_KNEE = 0.0031308  # linear light below which the sRGB curve is linear


def srgb_of_lab_tensor(lab: torch.Tensor) -> torch.Tensor:
    """N3HW LAB -> sRGB clipped to [0, 1], differentiable: for losses measured in the colours people see."""
    with torch.autocast(lab.device.type, enabled=False):  # float32 even in a bfloat16 training step
        l, a, b = lab.float().unbind(1)
        fy = (l + 16.0) / 116.0
        f = torch.stack([fy + a / 500.0, fy, (fy - b / 200.0).clamp_min(0.0)], 1)  # as pixels_of_lab and skimage
        xyz = torch.where(f > _F_KNEE, f**3, (f - _F_OFFSET) / _F_SLOPE)
        to_linear = torch.as_tensor(_RGB_FROM_XYZ * _WHITE[None, :], device=lab.device)
        linear = torch.einsum("ij,njhw->nihw", to_linear, xyz).clamp(0.0, 1.0)
        curved = 1.055 * linear.clamp_min(_SRGB_KNEE) ** (1 / 2.4) - 0.055
        return torch.where(linear <= _SRGB_KNEE, 12.92 * linear, curved)


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB transfer curve, inverse: encoded [0, 1] -> linear light."""
    v = np.asarray(v, np.float64)
    return np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, np.float64), 0, None)
    return np.where(v > _SRGB_KNEE, 1.055 * v ** (1 / 2.4) - 0.055, 12.92 * v)


def lab_f(t: np.ndarray) -> np.ndarray:
    """The CIE f() of XYZ -> LAB, as skimage computes it."""
    return np.where(t > 0.008856, np.cbrt(t), _F_SLOPE * t + _F_OFFSET)


def _tables(bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-code linear light, L of a grey pixel, and linear -> encoded code, for `bits`-bit images."""
    top = (1 << bits) - 1
    linear = srgb_to_linear(np.arange(top + 1) / top)
    grey_l = 116.0 * lab_f(linear) - 16.0
    encode = np.round(linear_to_srgb(np.arange(_ENCODE_STEPS) / (_ENCODE_STEPS - 1)) * top)
    dtype = np.uint8 if bits == 8 else np.uint16
    return linear.astype(np.float32), grey_l.astype(np.float32), encode.astype(dtype)


TABLES = {bits: _tables(bits) for bits in (8, 16)}


def bits_of(pixels: np.ndarray) -> int:
    """Bits per channel of integer pixels: 8 for uint8, 16 for uint16 (the two depths colorize works in)."""
    return 8 if pixels.dtype == np.uint8 else 16


def as_float(pixels: np.ndarray) -> np.ndarray:
    """Integer pixels -> float32 on a 0..1 scale."""
    return pixels.astype(np.float32) / np.float32((1 << bits_of(pixels)) - 1)


def has_color(pixels: np.ndarray, sample: int = 4096) -> bool:
    """Whether integer pixels hold colour (grey stored as RGB has none), judged on about `sample` pixels."""
    if pixels.ndim == 2:
        return False
    h, w = pixels.shape[:2]
    step = max(1, int((h * w / sample) ** 0.5))
    return mean_chroma(lab_of_pixels(np.ascontiguousarray(pixels[::step, ::step]))) >= GREY_CHROMA


def l_of_pixels(pixels: np.ndarray, rows: int = 64) -> np.ndarray:
    """uint8 / uint16 grey (HxW) or RGB (HxWx3) pixels -> L (float32 HxW), as skimage's rgb2lab gives it."""
    linear, grey_l, _ = TABLES[bits_of(pixels)]
    if pixels.ndim == 2:
        return grey_l[pixels]
    # Y = sum of each channel's linear light times its weight: three lookups in pre-weighted tables
    weighted = [linear * _XYZ_FROM_RGB[1, c] for c in range(3)]
    out = np.empty(pixels.shape[:2], np.float32)
    for y0 in range(0, pixels.shape[0], rows):
        band = pixels[y0 : y0 + rows]
        y = np.take(weighted[0], band[..., 0])  # take: a third faster than indexing
        y += np.take(weighted[1], band[..., 1])
        y += np.take(weighted[2], band[..., 2])
        out[y0 : y0 + rows] = np.where(y > 0.008856, 116.0 * np.cbrt(y) - 16.0, 903.3 * y)
    return out


def _f_inverse(f: np.ndarray) -> np.ndarray:
    """Inverse of lab_f, in float32."""
    return np.where(f > np.float32(_F_KNEE), f * f * f, (f - np.float32(_F_OFFSET)) * np.float32(1 / _F_SLOPE))


def pixels_of_lab(l: np.ndarray, ab: np.ndarray, bits: int = 8, rows: int = 64) -> np.ndarray:
    """L (HxW) and a, b (HxWx2) -> uint8 or uint16 RGB (HxWx3), clipped to sRGB as skimage's lab2rgb does.

    Works in bands of `rows` rows, so the float temporaries stay small for any image size.
    """
    h, w = l.shape
    out = np.empty((h, w, 3), np.uint8 if bits == 8 else np.uint16)
    encode = TABLES[bits][2]
    to_codes = _RGB_FROM_XYZ * _WHITE[None, :] * np.float32(_ENCODE_STEPS - 1)
    codes = np.empty((min(rows, h), w), np.intp)
    for y0 in range(0, h, rows):
        band = slice(y0, y0 + rows)
        fy = (l[band] + np.float32(16.0)) * np.float32(1 / 116.0)
        ab_band = ab[band]  # ab may be a predictor.UpsampledAB, made full size band by band
        x = _f_inverse(fy + ab_band[..., 0] * np.float32(1 / 500.0))
        y = _f_inverse(fy)
        z = _f_inverse(np.maximum(fy - ab_band[..., 1] * np.float32(1 / 200.0), 0))
        n = len(fy)
        for c in range(3):
            v = to_codes[c, 0] * x
            v += to_codes[c, 1] * y
            v += to_codes[c, 2] * z
            v += 0.5
            np.clip(v, 0, _ENCODE_STEPS - 1, out=v)
            np.copyto(codes[:n], v, casting="unsafe")  # truncation: v was offset by 0.5 to round
            np.take(encode, codes[:n], out=out[band, :, c])
    return out


def lab_of_pixels(pixels: np.ndarray) -> np.ndarray:
    """uint8 / uint16 RGB (...x3) -> float32 LAB (...x3), as skimage's rgb2lab gives it, via the lookup tables."""
    linear = TABLES[bits_of(pixels)][0]
    rgb = np.take(linear, pixels)
    xyz = rgb @ (_XYZ_FROM_RGB / _WHITE[:, None]).T  # XYZ relative to the white point
    f = lab_f(xyz).astype(np.float32, copy=False)
    out = np.empty(pixels.shape, np.float32)
    out[..., 0] = 116.0 * f[..., 1] - 16.0
    out[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    out[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return out
