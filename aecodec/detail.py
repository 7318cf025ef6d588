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
coded whatever it costs (held blocks, see choose): a flat picture comes back
within 3 levels at quality 100, edges and corners included.

A typical workflow looks like this::

    chosen = choose(original, decoded, lambda_, tables)       # None when no block pays
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

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from . import entropy
from .entropy import EntropyTables

SKIP = 255  # block map value: no corrections in this block
BLOCK = 16  # the encoder's block side; the format allows 4 .. 128
MIN_BLOCK_LOG2, MAX_BLOCK_LOG2 = 2, 7
STEP_CONSTANT = 26.0  # step = sqrt(STEP_CONSTANT / lambda): high-rate optimum for lambda * MSE + bpp
MAX_STEP = 255
SIDE_BITS = 3.0  # what the encoder charges a coded block for its map entry
ROUNDING = 0.3  # values round up from 0.3 of a step (a dead zone): small errors cost bits for little gain
# The encoder weighs distortion by this fraction of the quality's lambda. The shipped model's own curve
# buys distortion more cheaply than its lambda says (it is far from converged), so corrections must beat
# that, not lambda. On the 8 held-out training photos (never Kodak; bench/detail_tuning.py), 0.4 leaves
# the model's range as it was (BD-rate -0.1%) while raising the top; 0.6 costs +0.3%, 1.0 +1.3%.
LAMBDA_SCALE = 0.4
VALUE_RANGE = 32  # corrections beyond +-this are priced as escapes when choosing
# Blocks are held (see choose) only where the step brings their errors within this many levels: quality 75
# and above with the shipped model. Below, the whole picture is that far off, and holding spends bits the user
# chose not to (at quality 1 it added 0.9 kB to a 1 kB file of the test model).
MAX_HELD_ERROR = 12
BAND_BLOCKS = 4  # rows of blocks per band: the unit of coding, and of the coders' memory
MAX_PIXELS = 1 << 24  # the encoder adds no detail layer to larger images (it keeps the whole layer until packed)
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


def step_for(lambda_: float) -> int:
    """The quantisation step that suits a lambda (distortion in MSE of 0..255 pixels, rate in bits):
    at high rate a uniform step s costs s^2/12 in MSE and saves log2(s) bits, so the optimum is
    s = sqrt(6 / (lambda ln 2)) per colour sample, which with the cost averaged over three samples
    is sqrt(18 / (lambda ln 2)) = sqrt(26 / lambda)."""
    return int(min(MAX_STEP, max(1, round(math.sqrt(STEP_CONSTANT / lambda_)))))


def _block_sums(a: np.ndarray, block: int) -> np.ndarray:
    """(3, H, W) -> (3, rows, cols): sums over each block (zero padding past the edges)."""
    c, h, w = a.shape
    rows, cols = -(-h // block), -(-w // block)
    a = np.pad(a, ((0, 0), (0, rows * block - h), (0, cols * block - w)))
    return a.reshape(c, rows, block, cols, block).sum((2, 4))


def _expand(block_map: np.ndarray, block: int, height: int, width: int) -> np.ndarray:
    """(3, rows, cols) -> (3, H, W): each block's entry on each of its pixels."""
    return np.repeat(np.repeat(block_map, block, 1), block, 2)[:, :height, :width]


def _value_costs(tables: EntropyTables, values: np.ndarray) -> np.ndarray:
    """(len(values), tables): bits each table spends on each value, escapes included."""
    costs = np.empty((len(values), len(tables)))
    varint_bits = 8.0 * np.ceil(np.log2(2.0 * np.abs(values) + 2.0) / 7.0)  # an escape's bytes: any table
    for t, pmf in enumerate(tables.pmfs):
        bits = -np.log2(pmf / float(1 << entropy.PMF_BITS))
        symbol = values - tables.offsets[t]
        inside = (symbol >= 0) & (symbol < tables.sizes[t])
        costs[:, t] = np.where(inside, bits[np.clip(symbol, 0, len(pmf) - 1)], bits[-1] + varint_bits)
    return costs


def odd_step(lambda_: float) -> int:
    """The largest odd step not above the high-rate optimum sqrt(STEP_CONSTANT / lambda): rounding to
    nearest leaves integer errors within step // 2, and 2b + 1 is the largest step that keeps them
    within b. At the model's top lambda it is 7 (3 levels), where step_for gives 9 (4 levels)."""
    optimum = min(MAX_STEP, math.sqrt(STEP_CONSTANT / lambda_))
    return 2 * max(0, math.floor((optimum - 1) / 2)) + 1


def choose(original: np.ndarray, decoded: np.ndarray, lambda_: float, tables: EntropyTables,
           block: int = BLOCK, matmul=np.matmul) -> Detail | None:
    """The corrections worth sending for uint8 (H, W, 3) images at a lambda; None when no block pays.

    Each block and channel takes the cheapest of: no corrections, or its corrections coded with
    any one table, by LAMBDA_SCALE * lambda * (squared error summed over the block) / 3 + bits.
    The codec passes its ONNX Runtime matmul (aecodec/exactgemm.py): numpy's OpenBLAS threads
    busy-wait after a product and would slow the analysis network of the next image by ~70%.

    Held blocks are the exception: where step // 2 is at most MAX_HELD_ERROR, a block whose largest
    error exceeds both what the step can leave (step // 2) and the range of its original's values is
    coded whatever it costs, its values rounded to nearest, so it comes back within step // 2. Such
    an error is larger than anything in the block, so no texture hides it, yet the squared error
    misses it: a few large errors in 256 pixels do not pay for 256 values. The synthesis makes exactly
    these at the image's edges (its zero padding at the frame borders): a flat (200, 10, 10) came
    back off by up to 27 levels at its corners at quality 100. _step picks the step, which keeps a
    flat picture within 3 levels at quality 100. On the 8 held-out photos (bench/detail_edges.py)
    holding moved the BD-rate against no layer from -0.124% to -0.117%, and quality 100 from
    39.329 dB at 3.3771 bpp to 39.330 dB at 3.3780 bpp.
    """
    bands = _bands(original.shape[0], block)
    peaks = [_peak_and_range(original[rows], decoded[rows], block) for rows in bands]
    step = _step(peaks, lambda_)
    value_bits = _value_costs(tables, np.concatenate([np.arange(-VALUE_RANGE, VALUE_RANGE + 1), [4 * VALUE_RANGE]]))
    maps, values = [], []
    for rows, (peak, spread) in zip(bands, peaks):
        held = (peak > np.maximum(step // 2, spread)) & (step // 2 <= MAX_HELD_ERROR)
        band_values, band_map = _choose_band(original[rows], decoded[rows], step, held, lambda_ * LAMBDA_SCALE,
                                             value_bits, block, matmul)
        coded = _expand(band_map, block, *band_values.shape[1:]) != SKIP
        maps.append(band_map)
        values.append(band_values[coded].astype(np.int16))  # |value| <= 255 / step
    block_map = np.concatenate(maps, axis=1)
    if (block_map == SKIP).all():
        return None
    return Detail(step, block, block_map, tuple(values))


def _step(peaks: list[tuple[np.ndarray, np.ndarray]], lambda_: float) -> int:
    """step_for(lambda), or odd_step(lambda) below it when held blocks are at least half of the blocks
    whose errors exceed what the odd step leaves: a flat image, or one of flat areas, where those
    blocks are the point. Elsewhere (photographs) a finer step would cost every coded block for a
    few held ones: on the 8 held-out photos at quality 100, 0.18 dB at 0.6% more bits.
    peaks: (largest error, range of the original) per band, as _peak_and_range gives them."""
    step, odd = step_for(lambda_), odd_step(lambda_)
    if odd >= step or odd // 2 > MAX_HELD_ERROR:
        return step
    beyond = sum(int((peak > odd // 2).sum()) for peak, _ in peaks)
    held = sum(int((peak > np.maximum(odd // 2, spread)).sum()) for peak, spread in peaks)
    return odd if held and 2 * held >= beyond else step


def _bands(height: int, block: int) -> list[slice]:
    """The pixel rows of each band."""
    rows = block * BAND_BLOCKS
    return [slice(top, min(top + rows, height)) for top in range(0, height, rows)]


def _block_extremes(a: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (h, W, 3) -> (max, min), each (3, rows, cols), over each block's pixels inside the image."""
    h, w, c = a.shape
    rows, cols = -(-h // block), -(-w // block)
    if (rows * block, cols * block) != (h, w):  # repeating edge pixels changes neither extreme
        a = np.pad(a, ((0, rows * block - h), (0, cols * block - w), (0, 0)), mode="edge")
    a = a.reshape(rows, block, cols * block * c)  # across a block's rows first, on contiguous memory: 20x faster
    return tuple(f(f(a, 1).reshape(rows, cols, block, c), 2).transpose(2, 0, 1) for f in (np.max, np.min))


def _peak_and_range(original: np.ndarray, decoded: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(largest |error|, range of the original's values), each uint8 (3, rows, cols), for uint8 (h, W, 3)."""
    high, low = _block_extremes(original, block)
    error = np.maximum(original, decoded) - np.minimum(original, decoded)  # |original - decoded| in uint8
    return _block_extremes(error, block)[0], high - low


def _planes(image: np.ndarray) -> np.ndarray:
    """uint8 (h, W, 3) -> int32 (3, h, W)."""
    return image.transpose(2, 0, 1).astype(np.int32)


def _choose_band(original: np.ndarray, decoded: np.ndarray, step: int, held: np.ndarray, weight: float,
                 value_bits: np.ndarray, block: int, matmul) -> tuple[np.ndarray, np.ndarray]:
    """(values (3, h, W), block map (3, rows, cols)) for one band of rows; weight scales squared errors,
    and held blocks (3, rows, cols) are coded whatever they cost."""
    height, width = original.shape[:2]
    original, decoded = _planes(original), _planes(decoded)
    error = original - decoded
    # Dead-zone rounding, except in held blocks, where rounding to nearest leaves at most step // 2.
    rounding = np.where(_expand(held, block, height, width), 0.5, ROUNDING)
    values = np.floor(np.abs(error) / step + rounding).astype(np.int32) * np.sign(error)
    residual = original - np.clip(decoded + values * step, 0, 255)
    skip_cost = weight / 3 * _block_sums(error.astype(np.float64) ** 2, block)
    coded_cost = weight / 3 * _block_sums(residual.astype(np.float64) ** 2, block) + SIDE_BITS
    # Bits per block and table from each block's histogram of values: one small product, not a pass per table.
    blocks = skip_cost.size
    block_id = _expand(np.arange(blocks).reshape(skip_cost.shape), block, height, width)
    bins = 2 * VALUE_RANGE + 2  # -range .. range, and a last bin for everything beyond
    clipped = np.where(np.abs(values) > VALUE_RANGE, bins - 1, values + VALUE_RANGE)
    histogram = np.bincount((block_id * bins + clipped).ravel(), minlength=blocks * bins).reshape(blocks, bins)
    bits = matmul(histogram.astype(np.float64), value_bits)  # (blocks, tables)
    table = np.argmin(bits, axis=1)
    use = (coded_cost.ravel() + bits[np.arange(blocks), table] < skip_cost.ravel()) | held.ravel()
    return values, np.where(use, table, SKIP).astype(np.uint8).reshape(skip_cost.shape)


def _value_tables(band_map: np.ndarray, block: int, height: int, width: int) -> np.ndarray:
    """The table index of every coded pixel of a band of height rows, raster order (channel, row, column)."""
    per_pixel = _expand(band_map, block, height, width)
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
    for band, (rows, values) in enumerate(zip(_bands(height, detail.block), detail.values)):
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
    for band, rows in enumerate(_bands(height, block)):
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
    for band, (rows, values) in enumerate(zip(_bands(height, detail.block), detail.values)):
        if not len(values):
            continue
        band_map = detail.block_map[:, band * BAND_BLOCKS:(band + 1) * BAND_BLOCKS]
        coded = _expand(band_map, detail.block, rows.stop - rows.start, width) != SKIP
        planes = out[rows].transpose(2, 0, 1).astype(np.int32)
        planes[coded] += np.clip(values, -255, 255).astype(np.int32) * detail.step  # int32 exact for any values
        out[rows] = np.clip(planes, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return out
