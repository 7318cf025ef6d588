"""The detail layer: pixel corrections on top of the synthesis, in the blocks where they pay for their bits.

The learned transform saturates: with M latent channels per 16x16 block it cannot
carry every fine texture, thin line or saturated edge, however many bits it is
given. The detail layer adds, per block and colour channel, quantised corrections
``round((original - decoded) / step)``; the decoder adds ``value * step`` to its
pixels. The encoder decides block by block, by the rate-distortion cost at the
quality's own lambda, whether a block's corrections are worth their bits, and with
which of the model's Gaussian tables they are coded, so a photograph at a middle
quality gets few or none and text, line art and the highest qualities get many.
At the high qualities a block with an error larger than anything in the block is
coded whatever it costs (held blocks, see detail_choice.choose): a flat picture comes back
within 3 levels at quality 100, edges and corners included.

A typical workflow looks like this::

    chosen = detail_choice.choose(original, decoded, lambda_, tables)   # aecodec/detail_choice.py
    blob = encode(chosen, height, width, tables)               # the detail stream
    pixels = apply(decoded, decode(blob, height, width, tables))

Stream layout (little-endian):

======  =====  ===========================================================
bytes   type   field
======  =====  ===========================================================
1       u8     log2 of the block side in pixels, 2 .. 7
1       u8     quantisation step in pixel levels, 1 .. 255
4       u32    length L of the block map
L       bytes  zlib stream of the block map: u8, 3 x ceil(H/B) x ceil(W/B),
               channel-major raster; SKIP (255) for a block without
               corrections, else the index of the latent table its values use
======  =====  ===========================================================

then, for each band of BAND_BLOCKS rows of blocks, top to bottom, that has a
coded block:

======  =====  ===========================================================
bytes   type   field
======  =====  ===========================================================
4       u32    length C of the band's corrections
C       bytes  the corrections of every pixel in the band's coded blocks, in
               raster order within the band (channel, row, column), coded as
               in ``aecodec/entropy.py`` with the table its block names
======  =====  ===========================================================

Decoded pixel = clip(decoded + value * step, 0, 255). The map, the tables and the
values are integers, so every decoder adds the same corrections. Bands keep the
memory of coding and decoding proportional to a band, not to the picture.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from . import entropy
from .entropy import EntropyTables
from .tiling import regrouped

SKIP = 255  # block map value: no corrections in this block
MIN_BLOCK_LOG2, MAX_BLOCK_LOG2 = 2, 7
MAX_STEP = 255
BAND_BLOCKS = 4  # rows of blocks per band: the unit of coding, and of the coders' memory
_HEADER = struct.Struct("<BBI")
_LENGTH = struct.Struct("<I")


class DetailError(ValueError):
    """A detail stream that does not fit its image or tables."""


@dataclass(frozen=True)
class Detail:
    """What the detail stream holds."""

    step: int  # pixel levels per unit of a correction
    block: int  # block side in pixels
    block_map: np.ndarray  # uint8 (3, rows, cols): SKIP, or the table index of the block's values
    values: tuple[np.ndarray, ...]  # per band: int16 corrections of its coded blocks' pixels, raster order in the
    # band; decoding clips them to +-255, as far as a correction can matter


def expand(block_map: np.ndarray, block: int, height: int, width: int) -> np.ndarray:
    """(3, rows, cols) -> (3, H, W): each block's entry on each of its pixels."""
    return np.repeat(np.repeat(block_map, block, 1), block, 2)[:, :height, :width]


def bands(height: int, block: int) -> list[slice]:
    """The pixel rows of each band."""
    rows = block * BAND_BLOCKS
    return [slice(top, min(top + rows, height)) for top in range(0, height, rows)]


def _value_tables(band_map: np.ndarray, block: int, height: int, width: int) -> np.ndarray:
    """The table index of every coded pixel of a band of height rows, raster order (channel, row, column)."""
    per_pixel = expand(band_map, block, height, width)
    return per_pixel[per_pixel != SKIP]


def encode(detail: Detail, height: int, width: int, tables: EntropyTables) -> bytes:
    """The detail stream of an image of height x width pixels."""
    block_log2 = detail.block.bit_length() - 1
    if detail.block != 1 << block_log2 or not MIN_BLOCK_LOG2 <= block_log2 <= MAX_BLOCK_LOG2:
        raise ValueError(f"block side {detail.block} is not a power of two from 4 to 128")
    if not 1 <= detail.step <= MAX_STEP:
        raise ValueError(f"step {detail.step} is outside 1..{MAX_STEP}")
    block_map = zlib.compress(np.ascontiguousarray(detail.block_map, dtype=np.uint8).tobytes(), 9)
    parts = [_HEADER.pack(block_log2, detail.step, len(block_map)), block_map]
    for band, (rows, values) in enumerate(zip(bands(height, detail.block), detail.values)):
        band_map = detail.block_map[:, band * BAND_BLOCKS:(band + 1) * BAND_BLOCKS]
        if (band_map != SKIP).any():
            table_index = _value_tables(band_map, detail.block, rows.stop - rows.start, width)
            coded = entropy.encode(values, table_index, tables)
            parts += [_LENGTH.pack(len(coded)), coded]
    return b"".join(parts)


def decode(blob: bytes, height: int, width: int, tables: EntropyTables) -> Detail:
    """Inverse of encode; raises DetailError on anything that does not fit."""
    if len(blob) < _HEADER.size:
        raise DetailError("detail stream is truncated")
    block_log2, step, map_length = _HEADER.unpack_from(blob)
    if not MIN_BLOCK_LOG2 <= block_log2 <= MAX_BLOCK_LOG2:
        raise DetailError(f"detail block side 2^{block_log2} is outside 2^{MIN_BLOCK_LOG2}..2^{MAX_BLOCK_LOG2}")
    if step < 1:
        raise DetailError("detail step is 0")
    if _HEADER.size + map_length > len(blob):
        raise DetailError("detail block map runs past the stream")
    block = 1 << block_log2
    shape = (3, -(-height // block), -(-width // block))
    expected = shape[0] * shape[1] * shape[2]
    inflater = zlib.decompressobj()
    try:  # never inflate more than the map can hold: a hostile stream could expand without bound
        raw = inflater.decompress(blob[_HEADER.size:_HEADER.size + map_length], expected)
    except zlib.error as error:
        raise DetailError(f"detail block map: {error}") from None
    if len(raw) != expected or inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        raise DetailError(f"detail block map does not hold exactly {expected} entries")
    block_map = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
    if ((block_map != SKIP) & (block_map >= len(tables))).any():
        raise DetailError(f"detail block map names a table outside 0..{len(tables) - 1}")
    position, values = _HEADER.size + map_length, []
    for band, rows in enumerate(bands(height, block)):
        band_map = block_map[:, band * BAND_BLOCKS:(band + 1) * BAND_BLOCKS]
        if not (band_map != SKIP).any():
            values.append(np.empty(0, np.int16))
            continue
        if position + _LENGTH.size > len(blob):
            raise DetailError(f"detail stream ends before band {band}")
        (length,) = _LENGTH.unpack_from(blob, position)
        position += _LENGTH.size
        if position + length > len(blob):
            raise DetailError(f"detail band {band} runs past the stream")
        table_index = _value_tables(band_map, block, rows.stop - rows.start, width)
        try:  # beyond +-255 levels a correction only clips, so 16 bits hold every one that matters
            values.append(np.clip(entropy.decode(blob[position:position + length], table_index, tables),
                                  -255, 255).astype(np.int16))
        except entropy.EntropyError as error:
            raise DetailError(f"detail values of band {band}: {error}") from None
        position += length
    if position != len(blob):
        raise DetailError("detail stream has bytes after its last band")
    return Detail(step, block, block_map, tuple(values))


def apply(decoded: np.ndarray, detail: Detail) -> np.ndarray:
    """uint8 (H, W, 3) pixels with the corrections added, band by band."""
    height, width = decoded.shape[:2]
    out = decoded.copy()
    for band, (rows, values) in enumerate(zip(bands(height, detail.block), detail.values)):
        if not len(values):
            continue
        band_map = detail.block_map[:, band * BAND_BLOCKS:(band + 1) * BAND_BLOCKS]
        coded = expand(band_map, detail.block, rows.stop - rows.start, width) != SKIP
        planes = out[rows].transpose(2, 0, 1).astype(np.int32)
        planes[coded] += np.clip(values, -255, 255).astype(np.int32) * detail.step  # int32 exact for any values
        out[rows] = np.clip(planes, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return out


def apply_rows(bands: Iterable[np.ndarray], detail: Detail | None,
               timed: Callable[[str, float], None] | None = None) -> Iterator[np.ndarray]:
    """apply over an image that comes in bands of rows, top to bottom, regrouped on the layer's own
    bands; timed(stage, start), when given, is told how long the corrections took."""
    if detail is None:
        yield from bands
        return
    top = 0
    for rows in regrouped(bands, BAND_BLOCKS * detail.block):
        start = time.perf_counter()
        rows = apply(rows, _rows_of(detail, top, top + len(rows)))
        if timed:
            timed("detail", start)
        top += len(rows)
        yield rows


def _rows_of(detail: Detail, top: int, bottom: int) -> Detail:
    """The corrections of image rows [top, bottom), which start on one of the layer's bands."""
    block, band = detail.block, BAND_BLOCKS * detail.block
    return replace(detail, block_map=detail.block_map[:, top // block:-(-bottom // block)],
                   values=detail.values[top // band:-(-bottom // band)])
