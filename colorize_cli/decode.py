"""Files -> pixels: decode an image read-only, upright, with its alpha and metadata kept aside."""

import functools
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from colorize_cli.color import as_float, bits_of
from colorize_cli.errors import first_line
from colorize_cli.png16 import png_bit_depth, read_png16
from colorize_cli.process import configure_process, kept_messages, warnings_of_this_thread

DEFAULT_MAX_PIXELS = 200_000_000

ORIENTATION = 0x0112  # the EXIF tag
UPRIGHT = {  # EXIF orientation -> the turn that shows the pixels as viewers do
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a),
}
# Pillow modes -> a mode numpy and we understand (L, LA, I;16, I, F, RGB or RGBA)
CONVERT = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB", "YCbCr": "RGB",
           "LAB": "RGB", "HSV": "RGB", "I;16B": "I;16", "I;16L": "I;16", "I;16N": "I;16"}
OTHER_COLOUR_SPACES = {"CMYK", "YCbCr", "LAB", "HSV"}  # their ICC profile does not describe the RGB we return
FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
              (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


# Pillow formats that only name a file and hand it to an outside program or handler (EPS: Ghostscript)
PILLOW_STUBS = {"BUFR", "EPS", "GRIB", "HDF5", "MPEG", "WMF"}


@functools.cache
def readable_formats() -> tuple[str, ...]:
    """The Pillow formats decode() opens: every reader of Pillow's own."""
    Image.init()
    return tuple(fmt for fmt in Image.OPEN if fmt not in PILLOW_STUBS)


class DecodeError(Exception):
    """The file is not a usable image; the message says why in a few words."""


@dataclass
class DecodedImage:
    """Integer pixels as stored (uint8 or uint16): grey HxW or RGB HxWx3; alpha and metadata kept aside."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    exif: bytes | None = None
    icc: bytes | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def bit_depth(self) -> int:
        return bits_of(self.pixels)

    @property
    def is_grey(self) -> bool:
        return self.pixels.ndim == 2

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def rgb(self) -> np.ndarray | None:
        """RGB as float32 in [0, 1], or None for a grey image."""
        return None if self.is_grey else as_float(self.pixels)

    @property
    def grey(self) -> np.ndarray | None:
        """Grey as float32 in [0, 1], or None for a colour image."""
        return as_float(self.pixels) if self.is_grey else None


def decode(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode `path` (opened read-only); raise DecodeError with a short reason on bad input."""
    configure_process()  # for callers of the library that did not: our own pixel limit, warnings kept
    with open_regular(Path(path)) as f, warnings_of_this_thread() as caught:
        try:
            with Image.open(f, formats=readable_formats()) as im:
                check_pixels(im.size, max_pixels)
                image = _from_pillow(im, f)
            image.notes += caught  # e.g. corrupt EXIF: said with the path
            return image
        except DecodeError:
            raise
        except Image.UnidentifiedImageError:
            return _decode_other_tiff(f, max_pixels)
        except Exception as exc:  # decoders raise many types for damaged data
            raise DecodeError(damage_reason(exc)) from None


def open_regular(path: Path) -> BinaryIO:
    """Open `path` read-only, refusing a missing, empty or non-regular file before opening it."""
    try:
        check_regular(os.stat(path))
        # O_NONBLOCK: should a FIFO replace the file after the check, opening it must not hang
        f = open(path, "rb", opener=lambda name, flags: os.open(name, flags | getattr(os, "O_NONBLOCK", 0)))
    except FileNotFoundError:
        raise DecodeError("broken symlink" if os.path.islink(path) else "file not found (vanished)") from None
    except OSError as exc:
        raise DecodeError((exc.strerror or str(exc)).lower()) from None
    try:
        check_regular(os.fstat(f.fileno()))
    except DecodeError:
        f.close()
        raise
    return f


def check_regular(info: os.stat_result) -> None:
    """Only a non-empty regular file can be an image; anything else gets its own reason."""
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in FILE_KINDS if test(info.st_mode)), "a special file")
        raise DecodeError(f"not a regular file ({kind})")
    if info.st_size == 0:
        raise DecodeError("empty file (0 bytes)")


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse an image larger than `max_pixels` (0: no limit) from its header, before decoding it."""
    w, h = size
    if max_pixels and w * h > max_pixels:
        raise DecodeError(f"{w}x{h} = {w * h} pixels, over the limit of {max_pixels} "
                          f"(decompression bomb? see --max-pixels)")


def damage_reason(exc: Exception) -> str:
    """Why a decoder failed, in one line."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"read error ({exc.strerror})"
    text = first_line(exc)
    if isinstance(exc, EOFError) or "truncated" in text.lower():
        return f"truncated or damaged image data ({text})"
    return f"damaged or unsupported image ({text})"


def _from_pillow(im: Image.Image, f: BinaryIO) -> DecodedImage:
    """First frame, turned upright, 16 bits kept where Pillow would cut them to 8."""
    fmt = im.format or ""
    notes = []
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        notes.append(f"{frames} frames (animated or multi-page): only the first is colourised")
        im.seek(0)
    icc = None if im.mode in OTHER_COLOUR_SPACES else im.info.get("icc_profile")
    orientation = im.getexif().get(ORIENTATION, 1)
    array = _read_deep(im, f, fmt)
    if array is None:
        array = np.asarray(_supported_mode(im))
    array = UPRIGHT.get(orientation, lambda a: a)(array)
    return _from_array(array, fmt, _upright_exif(im, orientation), icc, notes)


def _supported_mode(im: Image.Image) -> Image.Image:
    """Palette, bilevel, CMYK and other modes converted to one of L, LA, I;16, I, F, RGB, RGBA."""
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    return im.convert(CONVERT[im.mode]) if im.mode in CONVERT else im


def _upright_exif(im: Image.Image, orientation: int) -> bytes | None:
    """The EXIF block to carry to the output, without an orientation: the pixels are upright now."""
    exif = im.info.get("exif")
    if exif is None or orientation == 1:
        return exif
    tags = im.getexif()
    del tags[ORIENTATION]
    return tags.tobytes()


def _read_deep(im: Image.Image, f: BinaryIO, fmt: str) -> np.ndarray | None:
    """16-bit PNG (any colour type) or 16-bit colour TIFF, which Pillow would cut to 8 bits; else None."""
    if fmt == "PNG" and png_bit_depth(f)[0] == 16:
        return read_png16(f)
    if fmt == "TIFF" and im.mode in ("RGB", "RGBA") and _tiff_bits(im) == 16:
        return _read_tiff16(f)
    return None


def _read_tiff16(f: BinaryIO) -> np.ndarray | None:
    """HxWxC pixels of the first page of an open TIFF, whatever its planar layout; None if not HxWxC."""
    array = _first_tiff_page(f)[0]
    return array if array.ndim == 3 else None


def _first_tiff_page(f: BinaryIO, max_pixels: int = 0) -> tuple[np.ndarray, int]:
    """The first page of an open TIFF as HxW or HxWxC, and the number of pages."""
    import tifffile

    f.seek(0)
    with tifffile.TiffFile(f) as tif:
        page = tif.pages[0]
        if max_pixels and page.imagewidth * page.imagelength > max_pixels:
            check_pixels((page.imagewidth, page.imagelength), max_pixels)
        array = page.asarray()
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and array.ndim == 3:
            array = np.moveaxis(array, 0, -1)
        return array, len(tif.pages)


def _decode_other_tiff(f: BinaryIO, max_pixels: int) -> DecodedImage:
    """TIFFs Pillow cannot open (float samples, unusual layouts), through tifffile; else not an image."""
    f.seek(0)
    if f.read(4) not in (b"II*\0", b"MM\0*"):
        raise DecodeError("not an image file (unrecognised format)")
    logged = kept_messages()
    already = len(logged)
    try:
        array, pages = _first_tiff_page(f, max_pixels)
    except DecodeError:
        raise
    except Exception as exc:
        said = logged[already:]  # tifffile's own words on what is wrong come before its exception
        raise DecodeError(f"damaged or unsupported image ({said[0][:200]})" if said else damage_reason(exc)) from None
    notes = [f"{pages} frames (animated or multi-page): only the first is colourised"] if pages > 1 else []
    return _from_array(array, "TIFF", None, None, notes)


def _tiff_bits(im: Image.Image) -> int:
    bits = im.tag_v2.get(258, (8,))
    return int(bits[0] if isinstance(bits, tuple) else bits)


def _as_uint(array: np.ndarray, notes: list[str]) -> np.ndarray:
    """Any sample type -> uint8 or uint16, mapped by what the samples hold; a note where the range is unusual."""
    if array.dtype in (np.uint8, np.uint16):
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(array.dtype, np.integer):
        return _integers_as_uint(array, notes)
    if np.issubdtype(array.dtype, np.floating):
        return _floats_as_uint(array.astype(np.float64), notes)
    raise DecodeError(f"unsupported sample type {array.dtype}")


def _integers_as_uint(array: np.ndarray, notes: list[str]) -> np.ndarray:
    """Integers of another width: kept where they fit 8 or 16 bits, else stretched from their actual range."""
    lo, hi = int(array.min(initial=0)), int(array.max(initial=0))
    if lo >= 0 and hi <= 255:
        return array.astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return array.astype(np.uint16)
    notes.append(f"{array.dtype} samples run {lo} to {hi}: stretched to 16 bits from that range")
    return _stretch(array.astype(np.float64), lo, hi)


def _floats_as_uint(array: np.ndarray, notes: list[str]) -> np.ndarray:
    """Floats as 16 bits: 0..1 as usual; 0..255 or 0..65535 read as integer codes; else their actual range."""
    finite = np.isfinite(array)
    if not finite.any():
        raise DecodeError("no finite sample values (all NaN or infinite)")
    if not finite.all():
        notes.append(f"{int((~finite).sum())} samples are NaN or infinite: set to 0")
        array = np.where(finite, array, 0.0)
    lo, hi = float(array.min()), float(array.max())
    if lo >= 0 and hi <= 1:
        return np.round(array * 65535).astype(np.uint16)
    if lo >= -0.05 and hi <= 1.05:  # a little over- or undershoot, as filters leave it
        notes.append(f"float samples run {lo:g} to {hi:g}: clipped to 0 to 1")
        return np.round(np.clip(array, 0, 1) * 65535).astype(np.uint16)
    for top in (255, 65535):
        if lo >= 0 and 10 < hi <= top:  # integer codes stored as floats; a small maximum is HDR, stretched below
            notes.append(f"float samples run {lo:g} to {hi:g}: read as 0 to {top}")
            return np.round(array * (65535 / top)).astype(np.uint16)
    notes.append(f"float samples run {lo:g} to {hi:g}: stretched to 16 bits from that range")
    return _stretch(array, lo, hi)


def _stretch(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.round((array - lo) * (65535 / max(hi - lo, 1e-30))).astype(np.uint16)


def _from_array(array: np.ndarray, fmt: str, exif, icc, notes) -> DecodedImage:
    """HxW, HxWx1 to HxWx4 integer or float pixels -> DecodedImage, the last channel of 2 or 4 as alpha."""
    array = _as_uint(np.ascontiguousarray(array), notes)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2 or array.ndim == 3 and array.shape[2] == 3:
        return DecodedImage(array, None, fmt, exif, icc, notes)
    if array.ndim == 3 and array.shape[2] in (2, 4):
        pixels = array[..., 0] if array.shape[2] == 2 else array[..., :3]
        return DecodedImage(np.ascontiguousarray(pixels), np.ascontiguousarray(array[..., -1]), fmt, exif, icc, notes)
    raise DecodeError(f"unsupported pixel layout {array.shape}")
