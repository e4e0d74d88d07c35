"""16-bit colour PNG, which Pillow reads and writes only as 8 bits, through pypng."""

import io
import struct
import zlib
from typing import BinaryIO

import numpy as np
import png

EXIF_PREFIX = b"Exif\x00\x00"


def png_bit_depth(f: BinaryIO) -> tuple[int, int]:
    """(bit depth, colour type) from the IHDR of an open PNG, which always sits at the same offset."""
    f.seek(24)
    head = f.read(2)
    return head[0], head[1]


def read_png16(f: BinaryIO) -> np.ndarray:
    """HxWxC uint16 pixels of an open 16-bit PNG (C = 1 to 4)."""
    f.seek(0)
    width, height, rows, info = png.Reader(file=f).asDirect()
    planes = info["planes"]
    return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, planes)


def write_png16(path, array: np.ndarray, icc: bytes | None = None, exif: bytes | None = None) -> None:
    """Write HxWx3 or HxWx4 uint16 pixels as a 16-bit PNG, with iCCP and eXIf chunks when given."""
    h, w, c = array.shape
    buffer = io.BytesIO()
    png.Writer(w, h, greyscale=False, alpha=c == 4, bitdepth=16).write(buffer, array.reshape(h, w * c))
    data = buffer.getvalue()
    extra = b""
    if icc:
        extra += _chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _chunk(b"eXIf", exif.removeprefix(EXIF_PREFIX))
    end_of_ihdr = 8 + 25
    with open(path, "wb") as f:
        f.write(data[:end_of_ihdr] + extra + data[end_of_ihdr:])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
