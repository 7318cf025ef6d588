"""Running a fully convolutional network over a big image in overlapping tiles.

Tiles are laid out on the latent grid (one element per ``stride`` x ``stride`` pixels,
the model's downsampling, read from its bundle). Each tile is run
with a halo of extra context on every side that is wider than the networks'
receptive field, and only its centre is kept, so seams do not show.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def tiled(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, upsample: bool,
          tile: int, halo: int, stride: int) -> np.ndarray:
    """Apply run to x (1, C, H, W) tile by tile; tile and halo are in latent units of stride pixels.

    upsample=False: x is an image and the output is on the latent grid (analysis).
    upsample=True: x is on the latent grid and the output is an image (synthesis).
    """
    grid_in = 1 if upsample else stride  # input pixels per latent unit
    grid_out = stride if upsample else 1
    rows, cols = x.shape[2] // grid_in, x.shape[3] // grid_in
    if rows <= tile and cols <= tile:
        return run(x)
    out = None
    for top in range(0, rows, tile):
        for left in range(0, cols, tile):
            bottom, right = min(top + tile, rows), min(left + tile, cols)
            t0, l0 = max(top - halo, 0), max(left - halo, 0)
            b0, r0 = min(bottom + halo, rows), min(right + halo, cols)
            piece = run(x[:, :, t0 * grid_in:b0 * grid_in, l0 * grid_in:r0 * grid_in])
            if out is None:
                out = np.empty((1, piece.shape[1], rows * grid_out, cols * grid_out), dtype=piece.dtype)
            out[:, :, top * grid_out:bottom * grid_out, left * grid_out:right * grid_out] = piece[
                :, :, (top - t0) * grid_out:(bottom - t0) * grid_out, (left - l0) * grid_out:(right - l0) * grid_out]
    return out
