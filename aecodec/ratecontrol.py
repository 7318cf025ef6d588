"""Finding the highest quality whose file fits a size budget."""

from __future__ import annotations

import math
from typing import Callable

from .quality import HUNDREDTHS, MAX as QUALITY_MAX, MIN as QUALITY_MIN, checked

RESOLUTION = 1 / HUNDREDTHS  # the finest quality step a header can tell apart
MAX_STEPS = 14


class TargetError(ValueError):
    """No quality reaches the requested size."""


UNITS = {"": ("bytes", 1), "B": ("bytes", 1), "K": ("KB", 1000), "KB": ("KB", 1000), "M": ("MB", 1000**2),
         "MB": ("MB", 1000**2), "KIB": ("KiB", 1024), "MIB": ("MiB", 1024**2)}  # as typed -> (as written, bytes)


class TargetSize(int):
    """A size in bytes that remembers how it was asked for ("1KB"), so that messages answer in that unit."""

    def __new__(cls, size: int, text: str, unit: tuple[str, int] = ("bytes", 1)):
        target = super().__new__(cls, size)
        target.text, target.unit = text, unit
        return target

    def __reduce__(self):  # pickled for batch workers, text and unit included
        return TargetSize, (int(self), self.text, self.unit)

    def words(self, size: int) -> str:
        """size in this target's unit: 1234 -> '1.24 KB', rounded up so that it never reads as fitting."""
        name, factor = self.unit
        if factor == 1:
            return f"{size} bytes"
        decimals = max(0, 2 - math.floor(math.log10(size / factor)))  # three significant digits, no exponent
        scaled = -(-size * 10**decimals // factor)  # rounded up, in integers
        shown = f"{scaled / 10**decimals:.{decimals}f}"
        return f"{shown.rstrip('0').rstrip('.') if decimals else shown} {name}"


def parse_size(text: str) -> TargetSize:
    """'40KB', '1.5MB', '2000' -> bytes (KB = 1000 bytes, KiB = 1024), keeping the text for messages."""
    cleaned = text.strip().upper().replace(" ", "")
    number = cleaned.rstrip("KMIB")
    unit = cleaned[len(number):]
    try:
        value = float(number) * UNITS[unit][1]
    except (ValueError, KeyError):
        raise ValueError(f"cannot read size {text!r}: use a number with B, KB, MB, KiB or MiB") from None
    if value <= 0:
        raise ValueError(f"size must be positive, not {text!r}")
    return TargetSize(int(value), text.strip() if unit else f"{number} bytes", UNITS[unit])


def fit_quality(encode: Callable[[float], bytes], budget: int, target: str | None = None,
                unit: Callable[[int], str] | None = None) -> tuple[float, bytes]:
    """Bisect quality so that len(encode(quality)) <= budget, as high as possible.

    File size grows with quality, so bisection finds the boundary to RESOLUTION.
    An unreachable budget is reported as ``target`` (the target as asked, say "0.05 bpp"), with
    the smallest size worded by ``unit``; both default to the budget's own wording when it is a
    TargetSize ("1KB", and kilobytes), else to bytes.
    """
    unit = unit or (budget.words if isinstance(budget, TargetSize) else (lambda size: f"{size} bytes"))
    target = target or (budget.text if isinstance(budget, TargetSize) else unit(budget))
    best = encode(QUALITY_MAX)
    if len(best) <= budget:
        return QUALITY_MAX, best
    smallest = encode(QUALITY_MIN)
    if len(smallest) > budget:
        raise TargetError(f"target of {target} is unreachable: the smallest file this model "
                          f"makes for this image, at quality 1, is {unit(len(smallest))}")
    low, high, best = QUALITY_MIN, QUALITY_MAX, (QUALITY_MIN, smallest)
    for _ in range(MAX_STEPS):
        if high - low <= RESOLUTION:
            break
        mid = checked((low + high) / 2)  # a quality the header can store
        data = encode(mid)
        if len(data) <= budget:
            low, best = mid, (mid, data)
        else:
            high = mid
    return best
