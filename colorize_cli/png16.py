"""16-bit colour PNG, which Pillow reads and writes only as 8 bits, through pypng."""

from pathlib import Path

import numpy as np
import png


def png_bit_depth(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR, which always sits at the same offset."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[24], head[25]


def read_png16(path: Path) -> np.ndarray:
    """HxWxC uint16 pixels of a 16-bit PNG (C = 1 to 4)."""
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, planes)


def write_png16(path: Path, array: np.ndarray, icc: bytes | None = None) -> None:
    """Write HxWx3 or HxWx4 uint16 pixels as a 16-bit PNG (with an iCCP chunk when given)."""
    h, w, c = array.shape
    writer = png.Writer(w, h, greyscale=False, alpha=c == 4, bitdepth=16)
    rows = array.reshape(h, w * c)
    with open(path, "wb") as f:
        writer.write(f, rows)
    if icc:
        _insert_iccp(path, icc)


def _insert_iccp(path: Path, icc: bytes) -> None:
    import struct
    import zlib

    data = Path(path).read_bytes()
    body = b"ICC profile\x00\x00" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    end_of_ihdr = 8 + 25
    Path(path).write_bytes(data[:end_of_ihdr] + chunk + data[end_of_ihdr:])
