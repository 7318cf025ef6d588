"""What a quality number means: its range, its resolution, its default, its rate level and its lambda.

A typical workflow looks like this::

    quality = checked(60)                      # 1..100, rounded to what a header stores
    level = level_of(quality, bundle.levels)   # where it falls between the model's gain rows
    gain_row = row_at(bundle.log_gain, level)  # the latent's gain there, interpolated
    lambda_ = rate_tradeoff(bundle, quality)   # the rate-distortion trade-off it stands for

This is the only module that checks or converts a quality; everything else takes
the numbers it returns. It needs only the standard library, so the file format
(aecodec/container.py) uses it too.
"""

from __future__ import annotations

import math
from typing import Protocol

MIN, MAX = 1.0, 100.0
DEFAULT = 75.0
HUNDREDTHS = 100  # a header stores quality x 100 as an integer, so both sides agree to 0.01


class _Model(Protocol):  # what rate_tradeoff reads of a ModelBundle
    levels: int
    extrapolated_levels: int

    @property
    def config(self): ...


def checked(quality: float | None) -> float:
    """A user's quality (None: the default) as the header will store it; ValueError outside 1..100."""
    quality = DEFAULT if quality is None else quality
    if not MIN <= quality <= MAX:
        raise ValueError(f"quality must be between 1 and 100, not {quality}")
    return round(quality * HUNDREDTHS) / HUNDREDTHS


def to_hundredths(quality: float) -> int:
    """The header's integer for a quality; ValueError outside 1..100."""
    stored = round(quality * HUNDREDTHS)
    from_hundredths(stored)  # the same range check a reader makes
    return stored


def from_hundredths(stored: int) -> float:
    """A header's integer as a quality; ValueError outside 1..100 (a corrupt or hostile header)."""
    if not MIN * HUNDREDTHS <= stored <= MAX * HUNDREDTHS:
        raise ValueError(f"quality {stored / HUNDREDTHS} is outside 1..100")
    return stored / HUNDREDTHS


def level_of(quality: float, levels: int) -> float:
    """Where a quality falls on a model's gain rows: 0 at quality 1, levels - 1 at quality 100."""
    return (quality - MIN) / (MAX - MIN) * (levels - 1)


def row_at(table, level: float):
    """A per-level table's row at a fractional level, linearly interpolated between its neighbours."""
    low = min(math.floor(level), len(table) - 2)
    fraction = level - low
    return table[low] * (1 - fraction) + table[low + 1] * fraction


def rate_tradeoff(model: _Model, quality: float) -> float:
    """lambda of a quality: the trained levels' log-spaced lambdas, continued on the same line for the
    gain rows that export extrapolated below the lowest trained rate."""
    config = model.config
    level = level_of(quality, model.levels) - model.extrapolated_levels  # trained levels; negative below
    low, high = math.log(config.lambda_min), math.log(config.lambda_max)
    return math.exp(low + (high - low) * level / max(config.levels - 1, 1))
