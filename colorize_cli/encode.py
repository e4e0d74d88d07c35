"""RGB -> files: encode a colourised image atomically, keeping alpha, bit depth and metadata where possible."""

from pathlib import Path

import numpy as np
from PIL import Image

from colorize_cli.color import bits_of
from colorize_cli.files import atomic_path

# output suffix -> (Pillow format, keeps alpha, keeps 16 bits)
FORMATS = {
    ".jpg": ("JPEG", False, False),
    ".jpeg": ("JPEG", False, False),
    ".png": ("PNG", True, True),
    ".tif": ("TIFF", True, True),
    ".tiff": ("TIFF", True, True),
    ".bmp": ("BMP", False, False),
    ".webp": ("WEBP", True, False),
}


def output_suffix(source: Path, fmt: str = "keep") -> str:
    """The output file's suffix: the input's own where we can write it, else .png."""
    if fmt != "keep":
        return f".{fmt}"
    suffix = source.suffix.lower()
    return source.suffix if suffix in FORMATS else ".png"


def output_bits(path: Path, bit_depth: int) -> int:
    """16 where both the input and the output format have 16 bits per channel, else 8."""
    return 16 if bit_depth == 16 and FORMATS[Path(path).suffix.lower()][2] else 8


def to_bits(array: np.ndarray, bits: int) -> np.ndarray:
    """uint8 <-> uint16 with rounding (65535 = 257 * 255)."""
    if bits == 8 and array.dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if bits == 16 and array.dtype == np.uint8:
        return array.astype(np.uint16) * np.uint16(257)
    return array


def describes_rgb(icc: bytes | None) -> bool:
    """Whether an ICC profile is for RGB pixels (a grey or CMYK input's profile would misdescribe the output)."""
    return bool(icc) and icc[16:20] == b"RGB "


JPEG_SEGMENT_MAX = 65533  # bytes one JPEG marker segment can hold: EXIF must fit in one


def encode(path: Path, pixels: np.ndarray, alpha: np.ndarray | None = None,
           exif: bytes | None = None, icc: bytes | None = None, quality: int = 95) -> list[str]:
    """Write uint8 or uint16 RGB (HxWx3) to `path`, format chosen by its suffix, via a temp file and rename.

    Returns notes on metadata the format cannot hold and so was left out."""
    path = Path(path)
    fmt, keeps_alpha, keeps_16 = FORMATS[path.suffix.lower()]
    bits = 16 if bits_of(pixels) == 16 and keeps_16 else 8
    array = to_bits(pixels, bits)
    if alpha is not None and keeps_alpha:
        array = np.concatenate([array, to_bits(alpha, bits)[..., None]], axis=2)
    options, notes = {}, []
    if exif and fmt == "JPEG" and len(exif) > JPEG_SEGMENT_MAX:
        notes.append(f"EXIF block of {len(exif)} bytes is too large for JPEG: left out")
        exif = None
    if exif:
        options["exif"] = exif
    if describes_rgb(icc):
        options["icc_profile"] = icc
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    with atomic_path(path) as tmp:
        if bits == 16:
            write_16bit(tmp, array, fmt, options)
        else:
            Image.fromarray(array).save(tmp, format=fmt, **options)
    return notes


def write_16bit(path: Path, array: np.ndarray, fmt: str, options: dict) -> None:
    """16-bit colour, which Pillow cannot hold: TIFF through tifffile (ICC kept, EXIF not), PNG through pypng."""
    if fmt == "TIFF":
        import tifffile

        icc = options.get("icc_profile")
        extratags = [(34675, "B", len(icc), icc, False)] if icc else []
        tifffile.imwrite(path, array, photometric="rgb", extratags=extratags)
    else:
        from colorize_cli.png16 import write_png16

        write_png16(path, array, icc=options.get("icc_profile"), exif=options.get("exif"))
