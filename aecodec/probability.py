"""The probability model: which Gaussian scales exist, how a predicted scale picks one, the integer tables.

Everything that decides a probability is here. Export builds the tables once
and stores them in the weights bundle (``aecodec/bundle.py``); the coders read
them as integers and never recompute them, so a different libm or numpy cannot
change a probability. Training bounds its predicted scales by the same
``SCALE_MIN``, so the model learns only scales that the tables can code.

Two kinds of table, each over a run of integers plus a final *escape* symbol
for values outside it (``aecodec/entropy.py`` codes those separately):

* latent residuals: one zero-mean Gaussian table per entry of the scale table;
  the fixed-point hyper-synthesis predicts a scale and ``scale_index`` picks the
  first entry at or above it;
* the hyper-latent: one table per channel of the learned factorized prior.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np

PMF_BITS = 16  # the integer frequencies of every table sum to 2**PMF_BITS
SCALE_MIN = 0.11  # the smallest Gaussian scale; training bounds its predictions by it too
SCALE_MAX = 256.0
SCALE_LEVELS = 64
TAIL_MASS = 1e-9  # probability left outside each table, coded through the escape symbol
HYPER_SEARCH_LIMIT = 1 << 12  # the hyper-latent tables' ranges are searched within +-this


def scale_table() -> np.ndarray:
    """The Gaussian scales of the latent tables, log-spaced from SCALE_MIN to SCALE_MAX (float64)."""
    return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))


def fixed_point(table: np.ndarray, fraction_bits: int) -> np.ndarray:
    """The scale table as int64 with fraction_bits fractional bits, rounded up.

    Rounding up keeps "at or above" exact: a fixed-point scale that rounds an
    exact value picks the entry that the exact value would.
    """
    return np.ceil(np.asarray(table) * (1 << fraction_bits)).astype(np.int64)


def scale_index(scale: np.ndarray, table: np.ndarray) -> np.ndarray:
    """For each predicted scale, the index of the first table entry at or above it (the last entry
    for larger ones). Both in the same units; integers in the codec, so every machine agrees."""
    scale, table = np.asarray(scale), np.asarray(table)
    integers = scale.dtype.kind in "iu" and table.dtype.kind in "iu"
    buckets = _buckets(table.astype(np.int64).tobytes()) if integers else None
    if buckets is not None:
        return _bucketed_scale_index(scale, table, *buckets)
    return np.minimum(np.searchsorted(table, scale, side="left"), len(table) - 1).astype(np.int64)


def _bucketed_scale_index(scale: np.ndarray, table: np.ndarray, lower: np.ndarray, table_end: np.ndarray,
                          bucket_bits: int) -> np.ndarray:
    """scale_index for integers, in a few array passes instead of a binary search per element
    (a quarter of the hyper-synthesis' time, before).

    The integers are cut into buckets of 2**bucket_bits, no wider than the smallest gap between
    table entries, so a bucket holds at most one entry. Then "entries below s" is the count of
    entries below s's bucket (lower) plus 1 if the bucket's entry lies below s: the same
    integer as the binary search, for every s.
    """
    s = np.clip(scale, table[0], table[-1] + 1).astype(np.int64)  # the same answer at and beyond the ends
    index = lower[s >> bucket_bits]
    index += table_end[index] < s
    return np.minimum(index, len(table) - 1)


@functools.lru_cache(maxsize=8)
def _buckets(table_bytes: bytes) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(entries below each bucket's start, the table with one entry past its end, bucket bits);
    None for a table this does not suit (not increasing, negative, or too finely spaced)."""
    table = np.frombuffer(table_bytes, dtype=np.int64)
    if len(table) < 2 or table[0] < 0 or np.any(np.diff(table) <= 0):
        return None
    bucket_bits = int(np.diff(table).min()).bit_length() - 1  # 2**bits <= the smallest gap
    buckets = (int(table[-1]) + 1 >> bucket_bits) + 1
    if buckets > 1 << 20:
        return None
    lower = np.searchsorted(table, np.arange(buckets, dtype=np.int64) << bucket_bits, side="left").astype(np.int64)
    return lower, np.append(table, np.iinfo(np.int64).max), bucket_bits


def quantize_pmf(probabilities: np.ndarray) -> np.ndarray:
    """Integer frequencies >= 1 summing to 2**PMF_BITS, close to the given probabilities."""
    p = np.maximum(np.asarray(probabilities, dtype=np.float64), 0)
    total = 1 << PMF_BITS
    if len(p) > total // 2:
        raise ValueError("table too long for the frequency precision")
    freq = np.maximum(np.floor(p / p.sum() * (total - len(p))).astype(np.int64), 0) + 1
    remainder = total - freq.sum()
    # Hand leftover counts to the symbols that lost most to flooring, largest first.
    order = np.argsort(-(p / p.sum() * total - freq), kind="stable")
    freq[order[:remainder]] += 1
    return freq


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc)(-np.asarray(x, dtype=np.float64) / math.sqrt(2))


def gaussian_tables(scales: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """One table per scale over residuals -R..R plus an escape symbol; returns (pmfs, offsets)."""
    pmfs, offsets = [], []
    z = math.sqrt(2) * _inverse_erfc(TAIL_MASS)
    for scale in scales:
        radius = max(1, math.ceil(z * scale))
        values = np.arange(-radius, radius + 1)
        mass = _normal_cdf((values + 0.5) / scale) - _normal_cdf((values - 0.5) / scale)
        pmfs.append(quantize_pmf(np.append(mass, TAIL_MASS)))
        offsets.append(-radius)
    return pmfs, np.array(offsets, dtype=np.int64)


def factorized_tables(cdf: Callable[[np.ndarray], np.ndarray],
                      channels: int) -> tuple[list[np.ndarray], np.ndarray]:
    """One table per channel of a factorized prior, over the integers that hold all but TAIL_MASS.

    ``cdf`` maps float64 values (channels, K) to each channel's CDF at them (the
    trained prior, evaluated in float64 at export). Returns (pmfs, offsets).
    """
    limit = np.full(channels, float(HYPER_SEARCH_LIMIT))

    def bisect(target: float) -> np.ndarray:
        """Per channel, the x where the CDF crosses target."""
        low, high = -limit, limit.copy()
        for _ in range(60):
            mid = (low + high) / 2
            below = cdf(mid[:, None])[:, 0] < target
            low, high = np.where(below, mid, low), np.where(below, high, mid)
        return (low + high) / 2

    lo, hi = bisect(TAIL_MASS / 2), bisect(1 - TAIL_MASS / 2)
    pmfs, offsets = [], []
    for c in range(channels):
        start, stop = math.floor(lo[c]), math.ceil(hi[c])
        edges = np.arange(start, stop + 2, dtype=np.float64) - 0.5  # the bounds of start..stop
        mass = np.maximum(np.diff(cdf(np.repeat(edges[None], channels, axis=0))[c]), 0)
        pmfs.append(quantize_pmf(np.append(mass, TAIL_MASS)))
        offsets.append(start)
    return pmfs, np.array(offsets, dtype=np.int64)


def _inverse_erfc(y: float) -> float:
    """x with erfc(x) = y, by bisection (export time only)."""
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erfc(mid) > y else (lo, mid)
    return (lo + hi) / 2
