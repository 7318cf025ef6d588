"""Rate-distortion plots as PNG. The only bench module that imports matplotlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

from aecodec.bench.curves import Curve

Y_LABELS = {"psnr": "PSNR-RGB (dB)", "ms_ssim_db": "MS-SSIM-RGB (dB) = -10 log10(1 - MS-SSIM)"}


def plot_rd(curves: list[Curve], metric: str, path: Path, max_bpp: float = 2.5, title: str = "") -> Path:
    """Quality against bpp for every curve that has ``metric``; references dashed; title: the image set."""
    draw_rd(curves, metric, max_bpp, title).savefig(path)
    return Path(path)


def draw_rd(curves: list[Curve], metric: str, max_bpp: float = 2.5, title: str = "") -> Figure:
    # The legend goes beside the axes: with a dozen curves, no place inside them leaves every curve visible.
    fig = Figure(figsize=(9, 5), dpi=120, layout="constrained")
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
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.legend(fontsize="small", loc="outside right upper")
    return fig
