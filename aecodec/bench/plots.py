"""Rate-distortion plots as PNG. The only bench module that imports matplotlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

from aecodec.bench.curves import Curve

Y_LABELS = {"psnr": "PSNR-RGB (dB)", "ms_ssim_db": "MS-SSIM-RGB (dB) = -10 log10(1 - MS-SSIM)"}


def plot_rd(curves: list[Curve], metric: str, path: Path, max_bpp: float = 2.5) -> Path:
    """Quality against bpp for every curve that has ``metric``; references dashed."""
    fig = Figure(figsize=(7, 5), dpi=120)
    ax = fig.add_subplot()
    for curve in curves:
        if not curve.has(metric):
            continue
        bpp, quality = np.asarray(curve.bpp), curve.quality(metric)
        order = np.argsort(bpp)
        style = dict(linestyle="--", marker=".", alpha=0.7) if curve.reference else dict(marker="o")
        label = curve.name + (" (ref)" if curve.reference else "")
        ax.plot(bpp[order], quality[order], label=label, markersize=4, **style)
    ax.set_xlim(0, max_bpp)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(Y_LABELS[metric])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
