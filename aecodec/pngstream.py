"""A PNG file written band by band of rows, so that a decoder never holds the whole image.

A typical workflow looks like this::

    writer = PngWriter(file, width, height, "RGB", compress_level=1, icc=icc, exif=exif)
    for rows in bands:                  # uint8 (h, width, 3), top to bottom
        writer.write(rows)
    writer.close()                      # IEND; refuses a file with rows missing

It writes what Pillow's ``image.save(file, "PNG", compress_level=...)`` writes, chunk for
chunk: IHDR, iCCP (the profile named "ICC Profile"), eXIf, IDAT, IEND, 8 bits per
sample, each row filtered as Pillow filters it (the first of None, Up, Sub and Paeth
with the least sum of bytes taken as signed), the filtered rows deflated with
Pillow's settings (memory level 9, the Z_FILTERED strategy). Only the IDAT bytes
differ, as Pillow deflates with zlib-ng and this module with Python's zlib: the
same pixels, a file of about the same size.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {"L": (0, 1), "LA": (4, 2), "RGB": (2, 3), "RGBA": (6, 4)}  # mode: (colour type, bytes per pixel)
FILTER_ROWS = 64  # rows filtered at a time: the filter's int16 temporaries stay a few MB
IDAT_BYTES = 1 << 16  # deflated bytes gathered per IDAT chunk, as Pillow writes them


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


class PngWriter:
    """An 8-bit PNG of a known size and mode (L, LA, RGB or RGBA), its rows written in bands."""

    def __init__(self, file: BinaryIO, width: int, height: int, mode: str, compress_level: int = 6,
                 icc: bytes = b"", exif: bytes = b""):
        colour_type, self.bpp = COLOUR_TYPES[mode]
        self.file, self.width, self.height, self.rows = file, width, height, 0
        self.previous = np.zeros(width * self.bpp, np.uint8)  # the row above the first is black, as in Pillow
        self.deflate = zlib.compressobj(compress_level, zlib.DEFLATED, 15, 9, zlib.Z_FILTERED)
        self.pending = bytearray()  # deflated bytes not yet in an IDAT chunk
        parts = [SIGNATURE, chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))]
        if icc:
            parts.append(chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc)))
        if exif:
            parts.append(chunk(b"eXIf", exif.removeprefix(b"Exif\0\0")))
        file.write(b"".join(parts))

    def write(self, rows: np.ndarray) -> None:
        """The next rows: uint8 (h, width) for L, (h, width, channels) otherwise."""
        rows = rows.reshape(len(rows), -1)
        if rows.shape[1] != self.width * self.bpp or self.rows + len(rows) > self.height:
            raise ValueError(f"rows of {rows.shape[1]} bytes do not fit a {self.width}x{self.height} PNG")
        for top in range(0, len(rows), FILTER_ROWS):
            part = rows[top:top + FILTER_ROWS]
            self._idat(self.deflate.compress(filtered(part, self.previous, self.bpp)))
            self.previous = part[-1].copy()
        self.rows += len(rows)

    def close(self) -> None:
        if self.rows != self.height:
            raise ValueError(f"a PNG of {self.height} rows was given {self.rows}")
        self._idat(self.deflate.flush(), last=True)
        self.file.write(chunk(b"IEND", b""))

    def _idat(self, data: bytes, last: bool = False) -> None:
        self.pending += data
        if len(self.pending) >= IDAT_BYTES or last:
            self.file.write(chunk(b"IDAT", bytes(self.pending)))
            self.pending.clear()


def filtered(rows: np.ndarray, previous: np.ndarray, bpp: int) -> bytes:
    """uint8 rows (h, n) -> the bytes of PNG's filtered scanlines, each a filter type and n bytes.

    Each row takes the first of None, Up, Sub and Paeth whose bytes, read as signed, sum to the
    least in absolute value: Pillow's choice (libImaging/ZipEncode.c), so files are alike in size.
    """
    above = np.concatenate([previous[None], rows[:-1]])
    left = shifted(rows, bpp)
    candidates = (rows, rows - above, rows - left, rows - paeth(left, above, shifted(above, bpp)))
    cost = np.stack([np.abs(c.view(np.int8)).view(np.uint8).sum(axis=1, dtype=np.uint32) for c in candidates])
    choice = np.argmin(cost, axis=0)  # the first of the least, as Pillow's strict comparisons in this order
    kinds = np.array([0, 2, 1, 4], np.uint8)[choice]  # PNG's numbers: None 0, Sub 1, Up 2, Paeth 4
    return np.concatenate([kinds[:, None], np.choose(choice[:, None], candidates)], axis=1).tobytes()


def shifted(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Each byte's neighbour one pixel to the left; 0 for the first pixel."""
    out = np.zeros_like(rows)
    out[:, bpp:] = rows[:, :-bpp]
    return out


def paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """PNG's Paeth predictor of left a, above b and upper left c (uint8 arrays): of a, b and c, the
    closest to a + b - c, ties going to a, then b."""
    c16 = c.astype(np.int16)
    b_c, a_c = b - c16, a - c16  # distances of a + b - c to a and to b, signed
    pc = np.abs(b_c + a_c)
    pa, pb = np.abs(b_c, out=b_c), np.abs(a_c, out=a_c)
    out = np.where(pb <= pc, b, c)
    np.copyto(out, a, where=(pa <= pb) & (pa <= pc))
    return out
