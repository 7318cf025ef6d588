"""Which blocks get detail corrections, and how coarse they are: the encoder's policy for aecodec/detail.py.

A typical workflow looks like this::

    chosen = choose(original, decoded, lambda_, tables)       # None when no block pays
    blob = detail.encode(chosen, height, width, tables)        # the stream, aecodec/detail.py

Decoders never run this module: any choice it makes is a valid stream, so it can
change without a format version.
"""

from __future__ import annotations

import math

import numpy as np

from . import detail
from .entropy import EntropyTables, value_bits

BLOCK = 16  # the encoder's block side; the format allows 4 .. 128
STEP_CONSTANT = 26.0  # step = sqrt(STEP_CONSTANT / lambda): high-rate optimum for lambda * MSE + bpp
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
MAX_PIXELS = 1 << 24  # the encoder adds no detail layer to larger images (it keeps the whole layer until packed)


def step_for(lambda_: float) -> int:
    """The quantisation step that suits a lambda (distortion in MSE of 0..255 pixels, rate in bits):
    at high rate a uniform step s costs s^2/12 in MSE and saves log2(s) bits, so the optimum is
    s = sqrt(6 / (lambda ln 2)) per colour sample, which with the cost averaged over three samples
    is sqrt(18 / (lambda ln 2)) = sqrt(26 / lambda)."""
    return int(min(detail.MAX_STEP, max(1, round(math.sqrt(STEP_CONSTANT / lambda_)))))


def odd_step(lambda_: float) -> int:
    """The largest odd step not above the high-rate optimum sqrt(STEP_CONSTANT / lambda): rounding to
    nearest leaves integer errors within step // 2, and 2b + 1 is the largest step that keeps them
    within b. At the model's top lambda it is 7 (3 levels), where step_for gives 9 (4 levels)."""
    optimum = min(detail.MAX_STEP, math.sqrt(STEP_CONSTANT / lambda_))
    return 2 * max(0, math.floor((optimum - 1) / 2)) + 1


def choose(original: np.ndarray, decoded: np.ndarray, lambda_: float, tables: EntropyTables,
           block: int = BLOCK, matmul=np.matmul, lambda_scale: float = LAMBDA_SCALE) -> detail.Detail | None:
    """The corrections worth sending for uint8 (H, W, 3) images at a lambda; None when no block pays.

    Each block and channel takes the cheapest of: no corrections, or its corrections coded with
    any one table, by lambda_scale * lambda * (squared error summed over the block) / 3 + bits
    (lambda_scale: LAMBDA_SCALE, unless a tuning bench tries another).
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
    bands = detail.bands(original.shape[0], block)
    peaks = [_peak_and_range(original[rows], decoded[rows], block) for rows in bands]
    step = _step(peaks, lambda_)
    costs = value_bits(tables, np.concatenate([np.arange(-VALUE_RANGE, VALUE_RANGE + 1), [4 * VALUE_RANGE]]))
    maps, values = [], []
    for rows, (peak, spread) in zip(bands, peaks):
        held = (peak > np.maximum(step // 2, spread)) & (step // 2 <= MAX_HELD_ERROR)
        band_values, band_map = _choose_band(original[rows], decoded[rows], step, held, lambda_ * lambda_scale,
                                             costs, block, matmul)
        coded = detail.expand(band_map, block, *band_values.shape[1:]) != detail.SKIP
        maps.append(band_map)
        values.append(band_values[coded].astype(np.int16))  # |value| <= 255 / step
    block_map = np.concatenate(maps, axis=1)
    if (block_map == detail.SKIP).all():
        return None
    return detail.Detail(step, block, block_map, tuple(values))


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


def _block_sums(a: np.ndarray, block: int) -> np.ndarray:
    """(3, H, W) -> (3, rows, cols): sums over each block (zero padding past the edges)."""
    c, h, w = a.shape
    rows, cols = -(-h // block), -(-w // block)
    a = np.pad(a, ((0, 0), (0, rows * block - h), (0, cols * block - w)))
    return a.reshape(c, rows, block, cols, block).sum((2, 4))


def _choose_band(original: np.ndarray, decoded: np.ndarray, step: int, held: np.ndarray, weight: float,
                 costs: np.ndarray, block: int, matmul) -> tuple[np.ndarray, np.ndarray]:
    """(values (3, h, W), block map (3, rows, cols)) for one band of rows; weight scales squared errors,
    and held blocks (3, rows, cols) are coded whatever they cost."""
    height, width = original.shape[:2]
    original, decoded = _planes(original), _planes(decoded)
    error = original - decoded
    # Dead-zone rounding, except in held blocks, where rounding to nearest leaves at most step // 2.
    # (Patched in place, not through a float64 array of roundings: that would be another band's worth.)
    magnitude = np.abs(error) / step
    values = magnitude + ROUNDING
    held_pixels = detail.expand(held, block, height, width)
    values[held_pixels] = magnitude[held_pixels] + 0.5
    del magnitude
    values = np.floor(values, out=values).astype(np.int32) * np.sign(error)
    residual = original - np.clip(decoded + values * step, 0, 255)
    skip_cost = weight / 3 * _block_sums(error.astype(np.float64) ** 2, block)
    coded_cost = weight / 3 * _block_sums(residual.astype(np.float64) ** 2, block) + SIDE_BITS
    # Bits per block and table from each block's histogram of values: one small product, not a pass per table.
    blocks = skip_cost.size
    block_id = detail.expand(np.arange(blocks).reshape(skip_cost.shape), block, height, width)
    bins = 2 * VALUE_RANGE + 2  # -range .. range, and a last bin for everything beyond
    clipped = np.where(np.abs(values) > VALUE_RANGE, bins - 1, values + VALUE_RANGE)
    histogram = np.bincount((block_id * bins + clipped).ravel(), minlength=blocks * bins).reshape(blocks, bins)
    bits = matmul(histogram.astype(np.float64), costs)  # (blocks, tables)
    table = np.argmin(bits, axis=1)
    use = (coded_cost.ravel() + bits[np.arange(blocks), table] < skip_cost.ravel()) | held.ravel()
    return values, np.where(use, table, detail.SKIP).astype(np.uint8).reshape(skip_cost.shape)
