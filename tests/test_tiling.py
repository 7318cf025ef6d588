"""Tiled inference: seams do not show, and no whole-image float copy is ever made.

bench/large_image.py measures the real thing (6000x4000, peak RSS); these are its cheap guards.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from aecodec.codec import Codec
from aecodec.transform import to_uint8
from aecodec.metrics import psnr
from aecodec.tiling import tiled
from helpers import photo_like


@pytest.mark.parametrize("upsample", [False, True])
def test_tiles_are_assembled_exactly(upsample):
    stride = 16
    """With a network that only looks at its own position, tiling must change nothing at all."""
    if upsample:
        x = np.random.default_rng(0).normal(size=(1, 2, 11, 7)).astype(np.float32)
        run = lambda t: np.repeat(np.repeat(t, stride, 2), stride, 3) * 2  # noqa: E731
    else:
        x = np.random.default_rng(0).normal(size=(1, 3, 11 * stride, 7 * stride)).astype(np.float32)
        run = lambda t: t[:, :, ::stride, ::stride] + 1  # noqa: E731
    expected = run(x)
    for tile, halo in ((1, 0), (3, 1), (4, 2), (64, 4)):
        assert np.array_equal(tiled(run, x, upsample, tile, halo, stride), expected)


def test_tiled_and_whole_coding_agree_on_ragged_tiles(tiny_weights):
    """tile=3 latent units (48 px) over 150x230: every row and column of tiles ends in a partial one."""
    rgb = photo_like(150, 230, seed=9)
    whole, tiles = Codec(tiny_weights, threads=1), Codec(tiny_weights, threads=1, tile=3)
    for encoder in (whole, tiles):
        data = encoder.compress(rgb, quality=60)
        a, b = whole.decompress(data), tiles.decompress(data)
        assert a.size == b.size == (230, 150)
        a, b = np.asarray(a), np.asarray(b)
        assert abs(psnr(a, rgb) - psnr(b, rgb)) < 0.1


def test_no_whole_image_float_copy(tiny_weights):
    """A float32 copy of the image is 4x its uint8 size; numpy's peak stays well under twice that."""
    codec = Codec(tiny_weights, threads=1, tile=16)
    rgb = photo_like(768, 1024, seed=4)
    codec.decompress(codec.compress(rgb))  # warm up: lazy imports and caches are not the codec's memory
    for step in ("compress", "decompress"):
        tracemalloc.start()
        try:
            data = codec.compress(rgb) if step == "compress" else codec.decompress(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 7 * rgb.nbytes, f"{step}: {peak / 1e6:.1f} MB for a {rgb.nbytes / 1e6:.1f} MB image"


def test_synthesis_output_nan_and_infinities_become_valid_pixels():
    x = np.array([np.nan, np.inf, -np.inf, -0.2, 0.0, 0.5, 0.999, 1.0, 1.7, 3e38], np.float32)
    assert to_uint8(x).tolist() == [0, 255, 0, 0, 0, 128, 255, 255, 255, 255]
