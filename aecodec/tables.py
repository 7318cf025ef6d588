"""Building the frozen integer probability tables. Runs at export, never while coding.

The tables are stored in the weights; decoders read them as integers and never
recompute them, so a different libm or numpy cannot change a probability.
"""

from __future__ import annotations

import math

import numpy as np

from .entropy import PMF_BITS

SCALE_MIN = 0.11
SCALE_MAX = 256.0
SCALE_LEVELS = 64
TAIL_MASS = 1e-9  # probability left outside each table, coded through the escape symbol


def scale_table() -> np.ndarray:
    """Gaussian scales, log-spaced; a predicted scale uses the first entry at or above it."""
    return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))


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


def _inverse_erfc(y: float) -> float:
    """x with erfc(x) = y, by bisection (export time only)."""
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erfc(mid) > y else (lo, mid)
    return (lo + hi) / 2
