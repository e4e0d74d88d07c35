"""Files -> pixels: decode an image read-only, upright, with its alpha and metadata kept aside."""

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from colorize_cli.png16 import png_bit_depth, read_png16

DEFAULT_MAX_PIXELS = 200_000_000


class DecodeError(Exception):
    """The file is not a usable image; the message says why in a few words."""


@dataclass
class DecodedImage:
    """Pixels in [0, 1] as float32: `grey` (HxW) or `rgb` (HxWx3); alpha and metadata kept aside."""

    rgb: np.ndarray | None
    grey: np.ndarray | None
    alpha: np.ndarray | None
    bit_depth: int
    format: str
    exif: bytes | None = None
    icc: bytes | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        h, w = (self.rgb if self.rgb is not None else self.grey).shape[:2]
        return w, h


def _scale(array: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer or float pixels -> float32 in [0, 1] and the source bit depth."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0, 8
    if array.dtype == np.uint16 or array.dtype == np.int32 and array.max(initial=0) > 255:
        return np.clip(array, 0, 65535).astype(np.float32) / 65535.0, 16
    if array.dtype == np.int32:
        return np.clip(array, 0, 255).astype(np.float32) / 255.0, 8
    if array.dtype == np.bool_:
        return array.astype(np.float32), 8
    return np.clip(array.astype(np.float32), 0.0, 1.0), 16


def _read_16bit_colour(im: Image.Image, path: Path, fmt: str) -> np.ndarray | None:
    """16-bit colour PNG or TIFF, which Pillow would cut to 8 bits; None for anything else."""
    if im.mode not in ("RGB", "RGBA"):
        return None
    if fmt == "PNG" and png_bit_depth(path)[0] == 16:
        return read_png16(path)
    if fmt == "TIFF" and _tiff_bits(im) == 16:
        import tifffile

        array = np.asarray(tifffile.imread(path))
        return array if array.ndim == 3 else None
    return None


def decode(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode `path` (opened read-only); raise DecodeError with a short reason on bad input."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DecodeError("file not found (vanished)") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                w, h = im.size
                if max_pixels and w * h > max_pixels:
                    raise DecodeError(f"{w}x{h} = {w * h} pixels exceeds --max-pixels {max_pixels}")
                return _from_pillow(im, path)
    except DecodeError:
        raise
    except PermissionError:
        raise DecodeError("permission denied") from None
    except FileNotFoundError:
        raise DecodeError("file not found (vanished)") from None
    except Image.UnidentifiedImageError:
        raise DecodeError("not an image file (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(f"decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            reason = f"truncated or damaged image data ({reason})"
        raise DecodeError(reason) from None


def _from_pillow(im: Image.Image, path: Path) -> DecodedImage:
    Image.MAX_IMAGE_PIXELS = None  # our own --max-pixels check has already run
    notes = []
    fmt = (im.format or path.suffix.lstrip(".")).upper()
    exif = im.info.get("exif")
    icc = im.info.get("icc_profile")
    if getattr(im, "n_frames", 1) > 1:
        notes.append(f"animated image with {im.n_frames} frames: only the first is colourised")
        im.seek(0)
    im.load()
    deep = _read_16bit_colour(im, path, fmt)
    if deep is not None:
        return _from_array(deep, fmt, exif, icc, notes)
    im = ImageOps.exif_transpose(im)
    if "exif" in im.info:
        exif = im.info["exif"]  # orientation reset to 1 by exif_transpose
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
        icc = None if mode == "CMYK" else icc  # a CMYK profile no longer describes RGB pixels
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("I;16B", "I;16L", "I;16N"):
        im = im.convert("I;16")
    elif mode == "RGBX":
        im = im.convert("RGB")
    return _from_array(np.asarray(im), fmt, exif, icc, notes)


def _tiff_bits(im: Image.Image) -> int:
    bits = im.tag_v2.get(258, (8,)) if hasattr(im, "tag_v2") else (8,)
    return int(bits[0] if isinstance(bits, tuple) else bits)


def _from_array(array: np.ndarray, fmt: str, exif, icc, notes) -> DecodedImage:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        pixels, channels = array, None
        alpha = None
    elif array.ndim == 3 and array.shape[2] in (2, 4):
        pixels, alpha = array[..., :-1], array[..., -1]
        channels = pixels.shape[2]
    elif array.ndim == 3 and array.shape[2] == 3:
        pixels, alpha, channels = array, None, 3
    else:
        raise DecodeError(f"unsupported pixel layout {array.shape}")
    values, bits = _scale(pixels)
    alpha = _scale(alpha)[0] if alpha is not None else None
    if channels == 1:
        values = values[..., 0]
    if values.ndim == 2:
        return DecodedImage(None, values, alpha, bits, fmt, exif, icc, notes)
    return DecodedImage(values, None, alpha, bits, fmt, exif, icc, notes)
