"""The latent stream of format version 3: two passes over a checkerboard, in bands of latent rows.

A typical workflow looks like this::

    order = stream_order(band_count(latent_rows, BAND_ROWS))   # [(pass, band), ...], the blobs' order
    data = pack(BAND_ROWS, blobs)                               # blobs: entropy.encode's, in that order
    rows, blobs = unpack(data, latent_rows)                     # StreamError on anything malformed

The latent's rows are cut into bands of ``rows`` rows (the last may be shorter). Each band is coded
in two passes, each its own ``aecodec/entropy.py`` blob: pass 0 holds its anchors ((row + column)
even), pass 1 the rest, whose probabilities the checkerboard context (``aecodec/context.py``) reads
from the anchors up to ``context.REACH`` rows away, so also from the next band's first rows. The
stream therefore puts the next band's anchors before a band's second pass:

    A0, A1, N0, A2, N1, ..., A(B-1), N(B-2), N(B-1)

so a decoder that reads it in order holds two bands of the latent at a time, never the whole.
Within a blob, symbols are in (channel, row, column) order among the pass's positions of the band,
grouped by table as entropy.py groups them.

Layout (little-endian):

======  =======  ============================================================
bytes   type     field
======  =======  ============================================================
1       u8       rows: latent rows per band, a multiple of 4 from 4 to 252
4 * 2B  u32[]    the length of each blob, in stream order (B bands)
rest    bytes    the blobs, in stream order
======  =======  ============================================================
"""

from __future__ import annotations

import struct

BAND_ROWS = 32  # latent rows per band (512 pixel rows): 8 hyper-latent rows, whose halo costs half again
ROW_STEP = 4  # a band is a whole number of hyper-latent rows
MAX_ROWS = 252

_LENGTH = struct.Struct("<I")


class StreamError(ValueError):
    """The latent stream's band layout is malformed."""


def band_count(latent_rows: int, rows: int) -> int:
    return -(-latent_rows // rows)


def band_rows(band: int, rows: int, latent_rows: int) -> tuple[int, int]:
    """[top, bottom) of a band."""
    return band * rows, min((band + 1) * rows, latent_rows)


def stream_order(bands: int) -> list[tuple[int, int]]:
    """(pass, band) of each blob in stream order: the next band's anchors before a band's second pass."""
    order = [(0, 0)] if bands else []
    for band in range(1, bands):
        order += [(0, band), (1, band - 1)]
    return order + ([(1, bands - 1)] if bands else [])


def pack(rows: int, blobs: list[bytes]) -> bytes:
    if rows % ROW_STEP or not ROW_STEP <= rows <= MAX_ROWS:
        raise ValueError(f"band rows must be a multiple of {ROW_STEP} from {ROW_STEP} to {MAX_ROWS}, not {rows}")
    return bytes([rows]) + b"".join(_LENGTH.pack(len(blob)) for blob in blobs) + b"".join(blobs)


def unpack(data: bytes, latent_rows: int) -> tuple[int, list[bytes]]:
    """(rows per band, the blobs in stream order) of a version-3 latent stream."""
    if not data:
        raise StreamError("latent stream is empty")
    rows = data[0]
    if rows % ROW_STEP or not ROW_STEP <= rows <= MAX_ROWS:
        raise StreamError(f"latent stream: {rows} rows per band is not a multiple of {ROW_STEP} "
                          f"from {ROW_STEP} to {MAX_ROWS}")
    count = 2 * band_count(latent_rows, rows)
    offset = 1 + count * _LENGTH.size
    if len(data) < offset:
        raise StreamError(f"latent stream is too short for the lengths of its {count} passes")
    lengths = [_LENGTH.unpack_from(data, 1 + i * _LENGTH.size)[0] for i in range(count)]
    if offset + sum(lengths) != len(data):
        raise StreamError(f"latent stream: its passes add up to {offset + sum(lengths)} bytes, "
                          f"but it has {len(data)}")
    blobs = []
    for length in lengths:
        blobs.append(data[offset:offset + length])
        offset += length
    return rows, blobs
