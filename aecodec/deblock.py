"""The deblocking filter: smooths the steps the synthesis leaves on its 16-pixel grid at low rates.

Each latent element paints a 16x16 block, and at low rates, where the latent is coarsely
quantised, the blocks' edges show as a faint grid in smooth areas (issue 22, item 5:
``metrics.grid_ratio`` of 1.3-1.6 at qualities 5-20, where photographs give about 1).
Every 16-pixel boundary, in columns and then in rows, is compared with the slope on both
sides of it::

    p3 p2 p1 p0 | q0 q1 q2 q3        excess = (q0 - p0) - ((p1 - p3) + (q3 - q1)) / 4

The excess (the step beyond what the slope predicts) is spread as a ramp over the eight
pixels: p0 and q0 each move half of it toward each other, p1 and q1 3/8, p2 and q2 1/4, p3
and q3 1/8. A real edge has a large excess: the correction fades from full at threshold/2 to
none at the threshold, and the threshold falls with quality (THRESHOLDS), to 0 (no filter)
above quality 90, where smoothing costs PSNR.

It runs on the synthesis' float32 output, before rounding to 8 bits (rounding first leaves
steps of a level that are themselves a grid in smooth areas). Its operations are IEEE
elementwise ones, so it adds no difference between machines of its own. Boundaries are 16
pixels apart and each reads and writes only the 4 pixels on either side, so the order they
are filtered in does not matter and an image can be filtered band by band (apply_rows) with
the same result as whole (apply).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

import numpy as np

from .tiling import regrouped

PERIOD = 16  # the synthesis' block: the model's latent stride
TAPS = 4  # pixels moved on each side of a boundary
WEIGHTS = np.array([4, 3, 2, 1], np.float32) / 8  # shares of the excess moved, from the boundary outwards
LOWEST, HIGHEST = np.float32(-1), np.float32(2)  # the synthesis output is bounded to this first (0 ... 1 is shown)

# (quality, threshold in grey levels): linear in between, 0 above the last point. Read from
# bench/results/deblock_tuning.json (25 training photos, never Kodak): near the threshold that gains
# the most PSNR on the photos at each quality; every one of them also takes the grid of the smooth
# synthetic pictures below 1.10.
THRESHOLDS = ((1, 16), (5, 16), (12, 12), (20, 8), (30, 6), (40, 5), (50, 4), (60, 2), (80, 2), (90, 1))


def threshold(quality: float) -> int:
    """The filter's threshold at a quality (1 ... 100), rounded half up; 0: no filter."""
    qualities, values = zip(*THRESHOLDS)
    if quality > qualities[-1]:
        return 0
    return int(np.floor(np.interp(quality, qualities, values) + 0.5))


def apply(pixels: np.ndarray, threshold: float) -> np.ndarray:
    """float32 (H, W, 3) pixels in 0 ... 1, filtered across every 16-pixel boundary; a new array."""
    return np.concatenate(list(apply_rows([pixels.copy()], threshold)))


def apply_rows(bands: Iterable[np.ndarray], threshold: float,
               timed: Callable[[str, float], None] | None = None) -> Iterator[np.ndarray]:
    """apply over an image that comes in float32 bands (rows, W, 3), top to bottom; the same pixels,
    in bands of other heights.

    threshold is in grey levels (of 255). The bands are filtered in place (whole-image memory is
    what a decoder must not spend twice), and may be views. The last TAPS rows of each band are
    held back until the next band arrives, since the boundary between them moves them.
    timed(stage, start), when given, is told how long the filter took.
    """
    if threshold <= 0:
        yield from bands
        return
    threshold = np.float32(threshold / 255)
    tail = None  # the last rows so far: filtered, but not yet across the boundary below them
    for band in regrouped(bands, PERIOD):  # each starts on a boundary
        start = time.perf_counter()
        # A corrupt file's synthesis can give NaN, infinities or 1e38: bounded first (NaN to the lower
        # bound, as to_uint8 does), the arithmetic below stays finite. No real picture comes near the bounds.
        np.fmax(band, LOWEST, out=band)
        np.fmin(band, HIGHEST, out=band)
        _filter(band, threshold, range(PERIOD, band.shape[1] - TAPS + 1, PERIOD))
        _filter(band.transpose(1, 0, 2), threshold, range(PERIOD, len(band) - TAPS + 1, PERIOD))
        if tail is not None and len(tail) == TAPS and len(band) >= TAPS:
            seam = np.concatenate([tail, band[:TAPS]])
            _filter(seam.transpose(1, 0, 2), threshold, range(TAPS, TAPS + 1))
            tail, band[:TAPS] = seam[:TAPS], seam[TAPS:]
        if timed:
            timed("deblocking", start)
        if tail is not None:
            yield tail
        cut = max(len(band) - TAPS, 0)
        tail = band[cut:].copy()  # a copy: the band itself is not held
        if cut:
            yield band[:cut]
        del band  # not held while the next band is made
    if tail is not None:
        yield tail


def _filter(x: np.ndarray, threshold: np.float32, boundaries: range) -> None:
    """Filter x (rows, columns, channels), float32, in place across the columns named by boundaries:
    a boundary b lies between columns b - 1 and b and has TAPS columns on each side."""
    for b in boundaries:
        before = x[:, b - TAPS:b][:, ::-1]  # p0, p1, p2, p3
        after = x[:, b:b + TAPS]  # q0, q1, q2, q3
        excess = (after[:, 0] - before[:, 0]) - ((before[:, 1] - before[:, 3]) + (after[:, 3] - after[:, 1])) / 4
        # full below threshold / 2, fading to nothing at the threshold
        excess *= np.clip(2 - 2 * np.abs(excess) / threshold, 0, 1)
        moved = excess[:, None] * WEIGHTS[None, :, None]
        before += moved
        after -= moved
