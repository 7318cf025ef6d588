"""Finding the highest quality whose file fits a size budget."""

from __future__ import annotations

from typing import Callable

QUALITY_MIN, QUALITY_MAX = 1.0, 100.0
RESOLUTION = 0.01  # the header stores quality in hundredths
MAX_STEPS = 14


class TargetError(ValueError):
    """No quality reaches the requested size."""


def parse_size(text: str) -> int:
    """'40KB', '1.5MB', '2000' -> bytes (KB = 1000 bytes, KiB = 1024)."""
    units = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "KIB": 1024, "MIB": 1024**2, "K": 1000, "M": 1000**2}
    cleaned = text.strip().upper().replace(" ", "")
    number = cleaned.rstrip("KMIB")
    unit = cleaned[len(number):]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ValueError(f"cannot read size {text!r}: use a number with B, KB, MB, KiB or MiB") from None
    if value <= 0:
        raise ValueError(f"size must be positive, not {text!r}")
    return int(value)


def fit_quality(encode: Callable[[float], bytes], budget: int, target: str | None = None,
                unit: Callable[[int], str] | None = None) -> tuple[float, bytes]:
    """Bisect quality so that len(encode(quality)) <= budget, as high as possible.

    File size grows with quality, so bisection finds the boundary to RESOLUTION.
    An unreachable budget is reported as ``target`` (the target as asked, say "0.05 bpp"), with
    the smallest size worded by ``unit``; both default to bytes.
    """
    unit = unit or (lambda size: f"{size} bytes")
    target = target or unit(budget)
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
        mid = round((low + high) / 2, 2)
        data = encode(mid)
        if len(data) <= budget:
            low, best = mid, (mid, data)
        else:
            high = mid
    return best
