"""Rate-distortion curves: ours from a run, and published ones from CompressAI JSON.

A reference file looks like this (``psnr-rgb``, ``ms-ssim-rgb`` and
``ms-ssim-db-rgb`` are each optional)::

    {"name": "JPEG", "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...]}}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METRICS = ("psnr", "ms_ssim_db")  # the quality axes we compare curves on


@dataclass(frozen=True)
class Curve:
    """Mean bpp against mean quality; ``psnr`` or ``ms_ssim`` may be empty."""

    name: str
    bpp: tuple[float, ...]
    psnr: tuple[float, ...] = ()
    ms_ssim: tuple[float, ...] = ()
    reference: bool = False

    def quality(self, metric: str) -> np.ndarray:
        """PSNR in dB, or MS-SSIM in dB (-10 log10(1 - MS-SSIM)), whose spread is easier to read."""
        if metric == "psnr":
            return np.asarray(self.psnr, np.float64)
        if metric == "ms_ssim_db":
            return ms_ssim_to_db(np.asarray(self.ms_ssim, np.float64))
        msg = f"unknown metric {metric!r}; expected one of {METRICS}"
        raise ValueError(msg)

    def has(self, metric: str) -> bool:
        return len(self.quality(metric)) == len(self.bpp) > 0


def ms_ssim_to_db(value):
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(1.0 - np.asarray(value, np.float64))


def load_reference(path: str | Path) -> Curve:
    """Read one CompressAI-style results JSON file as a reference curve."""
    data = json.loads(Path(path).read_text())
    try:
        results = data["results"]
        bpp = _floats(results["bpp"])
    except (KeyError, TypeError) as exc:
        msg = f"{path}: not a CompressAI results file (no results.bpp)"
        raise ValueError(msg) from exc
    psnr = _floats(results.get("psnr-rgb", results.get("psnr", [])))
    ms_ssim = _floats(results.get("ms-ssim-rgb", results.get("ms-ssim", [])))
    if not ms_ssim and "ms-ssim-db-rgb" in results:
        # Papers often publish MS-SSIM in dB only; undo -10 log10(1 - x).
        ms_ssim = tuple(1.0 - 10.0 ** (-db / 10.0) for db in _floats(results["ms-ssim-db-rgb"]))
    name = data.get("name") or Path(path).stem
    return Curve(str(name), bpp, psnr, ms_ssim, reference=True)


def load_references(paths) -> list[Curve]:
    """Load several references; a repeated name falls back to the file's stem."""
    curves, seen = [], set()
    for path in paths:
        curve = load_reference(path)
        if curve.name in seen:
            curve = Curve(Path(path).stem, curve.bpp, curve.psnr, curve.ms_ssim, True)
        seen.add(curve.name)
        curves.append(curve)
    return curves


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) if v is not None else math.nan for v in values)
