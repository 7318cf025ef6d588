"""Running a fully convolutional network over a big image in overlapping tiles.

Tiles are laid out on the latent grid (one element per ``stride`` x ``stride`` pixels,
the model's downsampling, read from its bundle). Each tile is run
with a halo of extra context on every side that is wider than the networks'
receptive field, and only its centre is kept, so seams do not show.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

Run = Callable[[np.ndarray], np.ndarray]


def spans(size: int, tile: int, halo: int, same_size: bool = False) -> list[tuple[int, int, int, int]]:
    """(start, stop, context start, context stop) of each tile along one axis of size units.

    same_size: every context spans tile + 2 * halo units (or the whole axis, if shorter), moved
    inwards at the axis' ends rather than cut short there. A tile then has more context than
    the halo, never less, and a network sees one input shape: ONNX Runtime's memory arena grows
    with every new shape (to 300 MB where one shape of 40 x 40 latent units needs 200 MB).
    """
    out = []
    for start in range(0, size, tile):
        stop = min(start + tile, size)
        if same_size:
            width = min(size, tile + 2 * halo)
            first = min(max(start - halo, 0), size - width)
            out.append((start, stop, first, first + width))
        else:
            out.append((start, stop, max(start - halo, 0), min(stop + halo, size)))
    return out


def tiled(run: Run, x: np.ndarray, upsample: bool, tile: int, halo: int, stride: int) -> np.ndarray:
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
    for top, bottom, t0, b0 in spans(rows, tile, halo):
        band = row_of_tiles(run, x[:, :, t0 * grid_in:b0 * grid_in], top - t0, bottom - t0, tile, halo, grid_in,
                            grid_out)
        if out is None:
            out = np.empty((1, band.shape[1], rows * grid_out, cols * grid_out), dtype=band.dtype)
        out[:, :, top * grid_out:bottom * grid_out] = band
    return out


def synthesized_bands(run: Run, latent_rows: Callable[[int, int], np.ndarray], rows: int, cols: int,
                      tile: int, halo: int, stride: int) -> Iterator[np.ndarray]:
    """The synthesis of a latent of rows x cols units, one row of tiles at a time, top to bottom:
    tiled(run, latent, True, ...) without the whole latent or the whole image, its tiles' contexts
    all of one size (spans' same_size).

    latent_rows(top, bottom) gives latent rows [top, bottom) as (1, C, bottom - top, cols); each band
    it yields is (1, C', tile * stride, cols * stride) (the last one shorter).
    """
    if rows <= tile and cols <= tile:  # as tiled: an image that fits one tile is run whole
        yield run(latent_rows(0, rows))
        return
    for top, bottom, t0, b0 in spans(rows, tile, halo, same_size=True):
        yield row_of_tiles(run, latent_rows(t0, b0), top - t0, bottom - t0, tile, halo, 1, stride, same_size=True)


def row_of_tiles(run: Run, x: np.ndarray, first: int, last: int, tile: int, halo: int, grid_in: int,
                 grid_out: int, same_size: bool = False) -> np.ndarray:
    """run over one row of tiles. x holds a band of rows with their context; the output is that of
    its rows [first, last), in latent units, over its whole width. same_size as for spans."""
    cols = x.shape[3] // grid_in
    out = None
    for left, right, l0, r0 in spans(cols, tile, halo, same_size):
        piece = run(x[:, :, :, l0 * grid_in:r0 * grid_in])
        if out is None:
            out = np.empty((1, piece.shape[1], (last - first) * grid_out, cols * grid_out), dtype=piece.dtype)
        out[:, :, :, left * grid_out:right * grid_out] = piece[
            :, :, first * grid_out:last * grid_out, (left - l0) * grid_out:(right - l0) * grid_out]
    return out


def regrouped(bands: Iterable[np.ndarray], unit: int) -> Iterator[np.ndarray]:
    """The same rows in bands of a multiple of unit rows, all but the last."""
    pending = None
    for band in bands:
        pending = band if pending is None else np.concatenate([pending, band])
        del band  # nothing is held while the next band is made but what is pending
        cut = len(pending) - len(pending) % unit
        if cut:
            yield pending[:cut]
            pending = pending[cut:].copy() if cut < len(pending) else None  # a copy: not a view of the band
    if pending is not None and len(pending):
        yield pending
